"""Merchants, venues and devices at the service layer: validation, scope, audit."""

from __future__ import annotations

import uuid

import msgspec
import pytest

import merchants
from foundation.errors import Forbidden
from foundation.paging import InvalidCursor
from merchants.creditcode import is_valid_credit_code
from merchants.errors import (
    BadDeviceCredentials,
    DuplicateCreditCode,
    InvalidCreditCode,
    InvalidDistrict,
    InvalidOpeningHours,
    NotYours,
    SetupQrGone,
)
from tests.factories.world import (
    Caller,
    city_admin,
    credit_code,
    district_admin,
    make_merchant,
    make_venue,
    staff,
)
from tests.qr import decode_qr_png

PUDONG, XUHUI = "310115", "310104"


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("91110000802100433B", True),
        ("91350100M000100Y43", True),
        ("91350100M000100Y44", False),  # check character off by one
        ("91350100M000100Y4", False),  # 17 characters
        ("91350100M000100YI3", False),  # I is not in the charset
        ("9135A100M000100Y43", False),  # the region must be digits
        ("", False),
    ],
)
def test_credit_code_checksum(code, valid):
    assert is_valid_credit_code(code) is valid


def test_generated_codes_are_valid():
    assert all(is_valid_credit_code(credit_code()) for _ in range(50))


async def test_create_merchant_validates_and_audits(conn):
    merchant = await make_merchant(conn)
    assert merchant.status == "active" and merchant.district == PUDONG
    audit = await conn.fetch("SELECT actor_kind, action, object_id, district FROM audit_log")
    assert [(r["actor_kind"], r["action"], r["object_id"], r["district"]) for r in audit] == [
        ("admin", "merchant.create", str(merchant.id), PUDONG)
    ]
    bad = msgspec.structs.replace(
        merchants.MerchantCreate(name="x", credit_code="91350100M000100Y44", district=PUDONG, contact_name="a", contact_phone="12345"),
    )
    with pytest.raises(InvalidCreditCode):
        await merchants.create_merchant(conn, city_admin(), bad)
    with pytest.raises(DuplicateCreditCode):
        await merchants.create_merchant(
            conn,
            city_admin(),
            merchants.MerchantCreate(
                name="dup", credit_code=merchant.credit_code, district=PUDONG, contact_name="a", contact_phone="12345"
            ),
        )
    with pytest.raises(InvalidDistrict):
        await make_merchant(conn, district="310199")
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 1


async def test_district_admin_scope(conn):
    pudong_admin, xuhui_admin = district_admin(PUDONG), district_admin(XUHUI)
    mine = await make_merchant(conn, district=PUDONG, by=pudong_admin)
    with pytest.raises(NotYours):
        await make_merchant(conn, district=XUHUI, by=pudong_admin)
    theirs = await make_merchant(conn, district=XUHUI, by=xuhui_admin)
    # A Xuhui merchant with a venue in Pudong (only the city places one there) becomes visible to
    # Pudong, but stays Xuhui's to manage.
    pudong_venue = await make_venue(conn, theirs.id, district=PUDONG, by=city_admin())
    with pytest.raises(NotYours):
        await make_venue(conn, mine.id, district=XUHUI, by=pudong_admin)
    listed = await merchants.list_merchants(conn, pudong_admin, limit=10, cursor=None)
    assert {m.id for m in listed.items} == {mine.id, theirs.id}
    with pytest.raises(NotYours):
        await merchants.update_merchant(conn, None, pudong_admin, theirs.id, merchants.MerchantUpdate(name="x"))
    xuhui_only = await make_merchant(conn, district=XUHUI, by=xuhui_admin)
    with pytest.raises(merchants.MerchantNotFound):
        await merchants.get_merchant(conn, pudong_admin, xuhui_only.id)
    with pytest.raises(merchants.VenueNotFound):
        await merchants.get_venue(conn, xuhui_admin, pudong_venue.id)
    assert (await merchants.list_venues(conn, xuhui_admin, limit=10, cursor=None)).items == []
    auditor = Caller("admin", uuid.uuid4(), role="auditor")
    assert len((await merchants.list_merchants(conn, auditor, limit=10, cursor=None)).items) == 3
    with pytest.raises(Forbidden):
        await make_merchant(conn, by=auditor)


async def test_paging_walks_every_row_once(conn):
    created = [await make_merchant(conn, name=f"m{i}") for i in range(7)]
    seen, cursor = [], None
    while True:
        page = await merchants.list_merchants(conn, city_admin(), limit=3, cursor=cursor)
        seen += [m.id for m in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [m.id for m in created]
    with pytest.raises(InvalidCursor):
        await merchants.list_merchants(conn, city_admin(), limit=3, cursor="not-a-cursor")


async def test_venue_validation_and_update(conn, redis):
    merchant = await make_merchant(conn)
    venue = await make_venue(conn, merchant.id, capacity=300)
    assert venue.location == merchants.types.Location(lat=31.2304, lng=121.4737)
    assert venue.opening_hours[0].opens == "09:00"
    with pytest.raises(InvalidOpeningHours):
        await merchants.update_venue(
            conn, redis, city_admin(), venue.id,
            msgspec.convert({"opening_hours": [{"days": [1], "opens": "18:00", "closes": "09:00"}]}, merchants.VenueUpdate),
        )
    updated = await merchants.update_venue(
        conn, redis, city_admin(), venue.id, msgspec.convert({"daily_capacity": None, "location": None}, merchants.VenueUpdate)
    )
    assert updated.daily_capacity is None and updated.location is None
    actions = await conn.fetchval("SELECT array_agg(action ORDER BY id) FROM audit_log")
    assert actions == ["merchant.create", "venue.create", "venue.update"]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"merchant_id": str(merchant.id)}, merchants.VenueUpdate)  # not changeable


async def test_device_provisioning_and_token(conn, redis):
    merchant = await make_merchant(conn)
    venue = await make_venue(conn, merchant.id)
    key = b"k" * 32
    device = await merchants.provision_device(
        conn, redis, staff(merchant.id), merchants.DeviceCreate(venue_id=venue.id, label="东门 1"), hmac_key=key, api_base_url="http://x/"
    )
    assert len(device.secret) >= 43
    stored = await conn.fetchrow("SELECT secret_hash, created_by_kind FROM devices WHERE id = $1", device.device_id)
    assert device.secret.encode() not in bytes(stored["secret_hash"]) and stored["created_by_kind"] == "staff"
    audit = await conn.fetchval("SELECT detail::text FROM audit_log WHERE action = 'device.provision'")
    assert device.secret not in audit
    creds = await merchants.authenticate_device(conn, device.device_id, device.secret, hmac_key=key)
    assert (creds.venue_id, creds.merchant_id) == (venue.id, merchant.id)
    for device_id, secret in [(device.device_id, device.secret + "x"), (uuid.uuid4(), device.secret)]:
        with pytest.raises(BadDeviceCredentials):
            await merchants.authenticate_device(conn, device_id, secret, hmac_key=key)
    # The setup QR is served once.
    png = await merchants.setup_qr_png(conn, redis, staff(merchant.id), device.device_id)
    assert png.startswith(b"\x89PNG")
    with pytest.raises(SetupQrGone):
        await merchants.setup_qr_png(conn, redis, staff(merchant.id), device.device_id)
    # Another merchant's staff cannot touch it; revoking ends authentication.
    other = await make_merchant(conn, name="other")
    with pytest.raises(merchants.DeviceNotFound):
        await merchants.revoke_device(conn, redis, staff(other.id), device.device_id)
    await merchants.revoke_device(conn, redis, staff(merchant.id), device.device_id)
    with pytest.raises(BadDeviceCredentials):
        await merchants.authenticate_device(conn, device.device_id, device.secret, hmac_key=key)


async def test_setup_qr_decodes_to_the_configuration(conn, redis):
    merchant = await make_merchant(conn)
    venue = await make_venue(conn, merchant.id, name="南京路站")
    device = await merchants.provision_device(
        conn, redis, city_admin(), merchants.DeviceCreate(venue_id=venue.id, label="闸机"), hmac_key=b"k" * 32,
        api_base_url="https://api.example.test/",
    )
    png = await merchants.setup_qr_png(conn, redis, city_admin(), device.device_id)
    config = msgspec.json.decode(decode_qr_png(png).encode())
    assert config == {
        "kind": "chongjun-device-setup",
        "v": 1,
        "api": "https://api.example.test",
        "device_id": str(device.device_id),
        "secret": device.secret,
        "venue_id": str(venue.id),
        "venue": "南京路站",
    }


def test_keys_come_from_the_secret_store_and_production_never_invents_them(settings, tmp_path):
    import base64

    from identity import MissingSecret
    from merchants.keys import DEVICE_HMAC_SECRET, SEAL_SECRET, require_keys, seal_key

    production = msgspec.structs.replace(settings, env="production", secrets_dir=tmp_path)
    with pytest.raises(MissingSecret):
        require_keys(production)
    for name in (DEVICE_HMAC_SECRET, SEAL_SECRET):
        (tmp_path / name).write_text(base64.b64encode(bytes(range(32))).decode())
    require_keys(production)
    # The seal is derived from the provisioned secret: the same file gives the same published key.
    other = msgspec.structs.replace(production, secrets_dir=tmp_path / "copy")
    (tmp_path / "copy").mkdir()
    for name in (DEVICE_HMAC_SECRET, SEAL_SECRET):
        (tmp_path / "copy" / name).write_text((tmp_path / name).read_text())
    assert seal_key(production).public_jwk == seal_key(other).public_jwk
