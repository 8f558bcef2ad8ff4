"""Rules of the merchants package: merchants, venues and devices, each reached through
`merchants.scope` (who may see and change what is decided there, once)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

import identity
from foundation.audit import write_audit
from foundation.outbox import write_event
from foundation.errors import Forbidden, Unavailable
from foundation.paging import Page, decode_cursor, fetch_size, page_of
from foundation.qr import render_qr
from foundation.vocabulary import SHANGHAI_DISTRICTS
from merchants import db, devicegate
from merchants.creditcode import is_valid_credit_code
from merchants.errors import (
    BadDeviceCredentials,
    DeviceNotFound,
    DuplicateCreditCode,
    InvalidCreditCode,
    InvalidDistrict,
    InvalidOpeningHours,
    NotActive,
    NotYours,
    SetupQrGone,
)
from merchants.scope import (
    Caller,
    admin_district,
    list_bounds,
    managed_merchant,
    require_admin_writer,
    require_device_manager,
    visible_device,
    visible_merchant,
    visible_venue,
)
from merchants.types import (
    Device,
    DeviceCreate,
    DeviceCredentials,
    DeviceIdentity,
    DeviceToken,
    DeviceTokenRequest,
    Merchant,
    MerchantCreate,
    MerchantUpdate,
    OpeningPeriod,
    ProvisionedDevice,
    PublicVenue,
    Venue,
    VenueCreate,
    VenueUpdate,
)

__all__ = (
    "audit",
    "authenticate_device",
    "create_merchant",
    "create_venue",
    "device_identity",
    "find_merchant",
    "find_venue",
    "get_device",
    "get_merchant",
    "get_venue",
    "issue_device_token",
    "keyset_page",
    "list_devices",
    "list_merchants",
    "list_public_venues",
    "list_venues",
    "merchant_venues",
    "provision_device",
    "revoke_device",
    "roll_device_secret",
    "setup_link",
    "setup_payload",
    "setup_qr_png",
    "update_merchant",
    "update_venue",
)

T = TypeVar("T")

DEVICE_TOKEN_TTL = 600
"""Seconds a device token lives; revocation does not wait for it (see merchants.devicegate)."""
SETUP_QR_TTL = 600
"""Seconds the setup QR of a new (or rolled) device can be fetched, once."""


def _require_district(code: str) -> None:
    if code not in SHANGHAI_DISTRICTS:
        raise InvalidDistrict(f"{code} is not a GB/T 2260 code of a Shanghai district")


async def audit(conn: asyncpg.Connection, caller: Caller, action: str, kind: str, object_id: UUID, district: str | None, **detail: Any) -> None:
    await write_audit(
        conn,
        actor_kind=caller.kind,
        actor_id=str(caller.subject),
        actor_role=caller.role,
        actor_district=caller.district,
        action=action,
        object_kind=kind,
        object_id=str(object_id),
        district=district,
        detail=detail,
    )
    # Issue 13: every merchant, venue and device change reaches the data center, without the
    # detail (a merchant's contact person is personal data): what changed, not to what.
    if kind not in ("merchant", "venue", "device"):
        return  # staff accounts are people: not part of the exchange
    changes = detail.get("changes")
    await write_event(
        conn, f"{kind}.changed",
        {"action": action, "id": object_id, "district": district,
         "fields": sorted(changes) if isinstance(changes, dict) else [],
         **({"venue_id": detail["venue_id"]} if "venue_id" in detail else {}),
         **({"merchant_id": detail["merchant_id"]} if "merchant_id" in detail else {})},
    )


def _plain(value: Any) -> Any:
    """A value as it goes into the audit detail (JSON)."""
    return msgspec.to_builtins(value)


# --- merchants -----------------------------------------------------------------------------------


async def create_merchant(conn: asyncpg.Connection, caller: Caller, data: MerchantCreate) -> Merchant:
    require_admin_writer(caller)
    _require_district(data.district)
    district = admin_district(caller)
    if district is not None and data.district != district:
        raise NotYours("A district admin onboards merchants into their own district only")
    data = msgspec.structs.replace(data, credit_code=data.credit_code.upper())
    if not is_valid_credit_code(data.credit_code):
        raise InvalidCreditCode("The 统一社会信用代码 has a wrong format or check character")
    row = await db.create_merchant(conn, new=data)
    if row is None:
        raise DuplicateCreditCode()
    merchant = msgspec.convert(row, Merchant)
    await audit(conn, caller, "merchant.create", "merchant", merchant.id, merchant.district, name=merchant.name)
    return merchant


async def keyset_page(
    conn: asyncpg.Connection, source: db.KeysetSource, *filters: Any, kind: type[T], limit: int, cursor: str | None
) -> Page[T]:
    """One page of a merchants list (`db.list_keyset` of `source` with its `filters`), each row as `kind`."""
    rows = await db.list_keyset(conn, source, *filters, after=decode_cursor(cursor), limit=fetch_size(limit))
    return page_of(rows, limit, partial(msgspec.convert, type=kind))


async def _scoped_page(
    conn: asyncpg.Connection, caller: Caller, source: db.KeysetSource, *filters: Any, kind: type[T],
    limit: int, cursor: str | None, merchant_id: UUID | None = None,
) -> Page[T]:
    """A page of `source` (filters: district, merchant, then `filters`) confined to the caller's
    `list_bounds`: an admin's district, a staff member's own merchant (which wins over `merchant_id`,
    the filter an admin may ask for)."""
    district, own = list_bounds(caller)
    return await keyset_page(conn, source, district, own or merchant_id, *filters, kind=kind, limit=limit, cursor=cursor)


async def get_merchant(conn: asyncpg.Connection, caller: Caller, merchant_id: UUID) -> Merchant:
    return msgspec.convert(await visible_merchant(conn, caller, merchant_id), Merchant)


async def list_merchants(conn: asyncpg.Connection, caller: Caller, *, limit: int, cursor: str | None) -> Page[Merchant]:
    return await _scoped_page(conn, caller, db.MERCHANTS, kind=Merchant, limit=limit, cursor=cursor)


async def _publish_status(redis: aioredis.Redis, devices: list[UUID], *, active: bool) -> None:
    """A merchant's or venue's status changed: its devices act again, or are refused within a
    second (merchants.devicegate)."""
    if active:
        await devicegate.publish_state(redis, devices)
    else:
        await devicegate.publish_refused(redis, devices)


async def update_merchant(
    conn: asyncpg.Connection, redis: aioredis.Redis, caller: Caller, merchant_id: UUID, data: MerchantUpdate
) -> Merchant:
    before = await managed_merchant(
        conn, caller, merchant_id, for_update=True, why="This merchant is managed by the district that onboarded it"
    )
    district = admin_district(caller)
    changes = {f: getattr(data, f) for f in data.__struct_fields__ if getattr(data, f) is not msgspec.UNSET}
    if "district" in changes:
        _require_district(changes["district"])
        if district is not None and changes["district"] != district:
            raise NotYours("Only a city admin moves a merchant to another district")
    if not changes:
        return msgspec.convert(before, Merchant)
    row = await db.update_merchant(conn, merchant_id, changes)
    merchant = msgspec.convert(row, Merchant)
    if "status" in changes and changes["status"] != before["status"]:
        await _publish_status(redis, await db.merchant_device_ids(conn, merchant_id), active=merchant.status == "active")
        if merchant.status != "active":
            await identity.revoke_merchant_sessions(conn, merchant_id, redis=redis)  # its staff's tokens stop
    await audit(
        conn, caller, "merchant.update", "merchant", merchant_id, merchant.district,
        changes=_plain(changes), before={k: _plain(before[k]) for k in changes},
    )
    return merchant


# --- venues --------------------------------------------------------------------------------------


def _check_hours(hours: list[OpeningPeriod]) -> None:
    for period in hours:
        if period.closes <= period.opens:
            raise InvalidOpeningHours(f"closes {period.closes} is not after opens {period.opens} (Asia/Shanghai)")
        if len(set(period.days)) != len(period.days):
            raise InvalidOpeningHours("a weekday is listed twice in one period")


async def create_venue(conn: asyncpg.Connection, caller: Caller, data: VenueCreate) -> Venue:
    require_admin_writer(caller)
    _require_district(data.district)
    _check_hours(data.opening_hours)
    district = admin_district(caller)
    if district is not None and data.district != district:
        raise NotYours("A district admin creates venues in their own district only")
    merchant = await managed_merchant(
        conn, caller, data.merchant_id, why="A district admin adds venues only to merchants their district onboarded"
    )
    if merchant["status"] == "closed":
        raise NotActive("The merchant is closed")
    row = await db.create_venue(
        conn,
        merchant_id=data.merchant_id,
        name_zh=data.name_zh,
        name_en=data.name_en,
        district=data.district,
        address=data.address,
        latitude=data.location.lat if data.location else None,
        longitude=data.location.lng if data.location else None,
        domain=data.domain,
        opening_hours=_plain(data.opening_hours),
        daily_capacity=data.daily_capacity,
    )
    venue = msgspec.convert(row, Venue)
    await audit(conn, caller, "venue.create", "venue", venue.id, venue.district, merchant_id=str(venue.merchant_id), name_zh=venue.name_zh)
    return venue


async def find_venue(conn: asyncpg.Connection, venue_id: UUID) -> Venue | None:
    """A venue by id with no caller scope: for other packages (the scan engine), never for a route."""
    row = await db.get_venue(conn, venue_id)
    return None if row is None else msgspec.convert(row, Venue)


async def find_merchant(conn: asyncpg.Connection, merchant_id: UUID) -> Merchant | None:
    """A merchant by id with no caller scope: for other packages (the ledger's statements), never for a route."""
    row = await db.get_merchant(conn, merchant_id)
    return None if row is None else msgspec.convert(row, Merchant)


async def merchant_venues(conn: asyncpg.Connection, merchant_id: UUID) -> list[asyncpg.Record]:
    """Every venue of a merchant (`id`, `name_zh`, `district`), oldest first, with no caller scope:
    for the ledger's reports, which confine the caller themselves."""
    return await db.list_merchant_venues(conn, merchant_id)


async def get_venue(conn: asyncpg.Connection, caller: Caller, venue_id: UUID) -> Venue:
    return msgspec.convert(await visible_venue(conn, caller, venue_id), Venue)


async def list_venues(
    conn: asyncpg.Connection, caller: Caller, *, limit: int, cursor: str | None, merchant_id: UUID | None = None
) -> Page[Venue]:
    return await _scoped_page(conn, caller, db.VENUES, kind=Venue, limit=limit, cursor=cursor, merchant_id=merchant_id)


async def update_venue(
    conn: asyncpg.Connection, redis: aioredis.Redis, caller: Caller, venue_id: UUID, data: VenueUpdate
) -> Venue:
    require_admin_writer(caller)
    before = await visible_venue(conn, caller, venue_id, for_update=True)
    changes: dict[str, Any] = {}
    for field in data.__struct_fields__:
        value = getattr(data, field)
        if value is msgspec.UNSET:
            continue
        if field == "location":
            changes["latitude"] = value.lat if value else None
            changes["longitude"] = value.lng if value else None
        elif field == "opening_hours":
            _check_hours(value)
            changes[field] = _plain(value)
        else:
            changes[field] = value
    if "district" in changes:
        _require_district(changes["district"])
        district = admin_district(caller)
        if district is not None and changes["district"] != district:
            raise NotYours("Only a city admin moves a venue to another district")
    if not changes:
        return msgspec.convert(before, Venue)
    venue = msgspec.convert(await db.update_venue(conn, venue_id, changes), Venue)
    if "status" in changes and changes["status"] != before["status"]:
        await _publish_status(redis, await db.venue_device_ids(conn, venue_id), active=venue.status == "active")
    await audit(
        conn, caller, "venue.update", "venue", venue_id, venue.district,
        changes=_plain(changes), before={k: _plain(before[k]) for k in changes if k in before},
    )
    return venue


async def list_public_venues(conn: asyncpg.Connection, *, domain: str | None, district: str | None) -> list[PublicVenue]:
    rows = await db.list_public_venues(conn, domain=domain, district=district)
    return [
        msgspec.convert({**dict(row), "district_name_zh": SHANGHAI_DISTRICTS.get(row["district"], ("",))[0]}, PublicVenue)
        for row in rows
    ]


# --- devices -------------------------------------------------------------------------------------


def _hash_secret(key: bytes, device_id: UUID, secret: str) -> bytes:
    # A keyed fast hash is enough: the secret is 256 random bits, so there is nothing to brute-force;
    # the device id in the input stops a hash from being replayed onto another device's row.
    return hmac.new(key, device_id.bytes + secret.encode(), hashlib.sha256).digest()


def setup_payload(device_id: UUID, secret: str, venue_id: UUID, venue_name: str, *, api_base_url: str) -> dict[str, object]:
    """What a device's setup QR holds (and `/scan#setup=` carries, base64url-encoded)."""
    return {
        "kind": "chongjun-device-setup",
        "v": 1,
        "api": api_base_url.rstrip("/"),
        "device_id": str(device_id),
        "secret": secret,
        "venue_id": str(venue_id),
        "venue": venue_name,
    }


def setup_link(payload: dict[str, object]) -> str:
    """The H5 scanner's setup link for a setup payload: `<api>/scan#setup=<base64url of its JSON>`.

    The fragment never reaches a server (browsers do not send it), and the page removes it from
    the address bar and history as soon as it has read it.
    """
    encoded = base64.urlsafe_b64encode(msgspec.json.encode(payload)).rstrip(b"=").decode()
    return f"{payload['api']}/scan#setup={encoded}"


def _setup_key(device_id: UUID) -> str:
    return f"cj:device:{{{device_id}}}:setup"


async def _offer_setup(
    redis: aioredis.Redis, device_id: UUID, secret: str, venue: asyncpg.Record, *, api_base_url: str, audience: str
) -> tuple[str, int]:
    """Keep the setup payload (with the secret) for one fetch within SETUP_QR_TTL seconds."""
    payload = setup_payload(device_id, secret, venue["id"], venue["name_zh"], api_base_url=api_base_url)
    try:
        await redis.set(_setup_key(device_id), msgspec.json.encode(payload), ex=SETUP_QR_TTL)
    except (OSError, RedisError) as exc:
        raise Unavailable("The setup code cannot be stored right now; nothing was changed, try again") from exc
    prefix = "/v1/admin/devices" if audience == "admin" else "/v1/merchant/devices"
    return f"{prefix}/{device_id}/setup-qr.png", SETUP_QR_TTL


async def provision_device(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    caller: Caller,
    data: DeviceCreate,
    *,
    hmac_key: bytes,
    api_base_url: str,
) -> ProvisionedDevice:
    require_device_manager(caller)
    venue = await visible_venue(conn, caller, data.venue_id)
    merchant = await db.get_merchant(conn, venue["merchant_id"])
    if venue["status"] != "active" or merchant is None or merchant["status"] != "active":
        raise NotActive("Devices are provisioned for active venues of active merchants only")
    secret = secrets.token_urlsafe(32)
    device_id = UUID(bytes=secrets.token_bytes(16), version=4)
    row = await db.create_device(
        conn,
        device_id=device_id,
        venue_id=venue["id"],
        merchant_id=venue["merchant_id"],
        label=data.label,
        secret_hash=_hash_secret(hmac_key, device_id, secret),
        created_by_kind=caller.kind,
        created_by=str(caller.subject),
    )
    await audit(conn, caller, "device.provision", "device", device_id, venue["district"], venue_id=str(venue["id"]), label=data.label)
    url, ttl = await _offer_setup(redis, row["id"], secret, venue, api_base_url=api_base_url, audience=caller.kind)
    return ProvisionedDevice(device_id=row["id"], secret=secret, setup_qr_url=url, setup_qr_expires_in=ttl)


async def get_device(conn: asyncpg.Connection, caller: Caller, device_id: UUID) -> Device:
    return msgspec.convert(await visible_device(conn, caller, device_id), Device)


async def list_devices(
    conn: asyncpg.Connection, caller: Caller, *, limit: int, cursor: str | None, venue_id: UUID | None = None
) -> Page[Device]:
    return await _scoped_page(conn, caller, db.DEVICES, venue_id, kind=Device, limit=limit, cursor=cursor)


async def revoke_device(conn: asyncpg.Connection, redis: aioredis.Redis, caller: Caller, device_id: UUID) -> Device:
    """Revoke for good; the device's tokens stop working within a second (see merchants.devicegate)."""
    require_device_manager(caller)
    device = await visible_device(conn, caller, device_id, for_update=True)
    if device["status"] == "revoked":
        return msgspec.convert(device, Device)  # idempotent: revoking twice is not an error
    row = await db.revoke_device(conn, device_id)
    await devicegate.publish_refused(redis, [device_id])
    try:
        await redis.delete(_setup_key(device_id))
    except (OSError, RedisError):
        pass  # the setup payload expires by itself; its secret no longer works anyway
    await audit(conn, caller, "device.revoke", "device", device_id, device["district"], venue_id=str(device["venue_id"]))
    return msgspec.convert(row, Device)


async def roll_device_secret(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    caller: Caller,
    device_id: UUID,
    *,
    hmac_key: bytes,
    api_base_url: str,
) -> ProvisionedDevice:
    """A new secret (shown once); the old one and every token issued with it stop working."""
    require_device_manager(caller)
    device = await visible_device(conn, caller, device_id, for_update=True)
    if device["status"] != "active":
        raise NotActive("A revoked device cannot be given a new secret; provision a new one")
    secret = secrets.token_urlsafe(32)
    row = await db.roll_device_secret(conn, device_id, _hash_secret(hmac_key, device_id, secret))
    venue = await db.get_venue(conn, device["venue_id"])
    url, ttl = await _offer_setup(redis, device_id, secret, venue, api_base_url=api_base_url, audience=caller.kind)
    # Published before the transaction commits, on purpose: a reader that reaches PostgreSQL in
    # between still sees the old generation but cannot SET NX over this marker, so the old
    # secret's tokens are never let through. If the transaction then rolls back, the device's
    # tokens are refused until the marker expires (ACTIVE_TTL): that failure is closed.
    await devicegate.publish_state(redis, [device_id], secret_generation=row["secret_generation"])
    await audit(conn, caller, "device.roll_secret", "device", device_id, device["district"], venue_id=str(device["venue_id"]))
    return ProvisionedDevice(device_id=device_id, secret=secret, setup_qr_url=url, setup_qr_expires_in=ttl)


async def setup_qr_png(conn: asyncpg.Connection, redis: aioredis.Redis, caller: Caller, device_id: UUID) -> bytes:
    """The setup QR of a device just provisioned or rolled: served once, to whoever may manage it."""
    require_device_manager(caller)
    await visible_device(conn, caller, device_id)
    try:
        payload = await redis.getdel(_setup_key(device_id))
    except (OSError, RedisError) as exc:
        raise Unavailable("The setup code cannot be read right now") from exc
    if payload is None:
        raise SetupQrGone("The setup code was already fetched or has expired; roll the secret for a new one")
    return render_qr(payload.decode(), "png")


async def authenticate_device(conn: asyncpg.Connection, device_id: UUID, secret: str, *, hmac_key: bytes) -> DeviceCredentials:
    """Check a device's secret; every failure (unknown, wrong, revoked, venue closed) looks the same."""
    row = await db.get_device_for_token(conn, device_id)
    presented = _hash_secret(hmac_key, device_id, secret)
    if row is None or not hmac.compare_digest(presented, bytes(row["secret_hash"])) or not row["usable"]:
        raise BadDeviceCredentials()
    await db.touch_device_token(conn, device_id)
    return DeviceCredentials(
        device_id=row["id"], venue_id=row["venue_id"], merchant_id=row["merchant_id"], secret_generation=row["secret_generation"]
    )


async def issue_device_token(
    conn: asyncpg.Connection, data: DeviceTokenRequest, *, hmac_key: bytes, keyring: identity.KeyRing
) -> DeviceToken:
    """`POST /v1/devices/token`: a short-lived device JWT naming the device, its merchant and venue."""
    creds = await authenticate_device(conn, data.device_id, data.secret, hmac_key=hmac_key)
    principal = identity.Principal(
        kind="device",
        subject=creds.device_id,
        merchant_id=creds.merchant_id,
        venue_id=creds.venue_id,
        secret_generation=creds.secret_generation,
    )
    token = identity.issue_access_token(principal, keyring=keyring, ttl_seconds=DEVICE_TOKEN_TTL)
    return DeviceToken(access_token=token, expires_in=DEVICE_TOKEN_TTL)


async def device_identity(conn: asyncpg.Connection, caller: Caller) -> DeviceIdentity:
    if caller.kind != "device":
        raise Forbidden()
    row = await db.get_device_identity(conn, caller.subject)
    if row is None:
        raise DeviceNotFound()
    return msgspec.convert(row, DeviceIdentity)
