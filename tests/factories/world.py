"""Worlds for tests: the merchants, venues, devices, staff and benefits a test acts on, and the
callers that act.

- Callers and service-level builders (`city_admin`, `make_merchant`, `make_venue`, ...): for
  tests of a package's service functions over a connection.
- The scan world (`build_world`): a Pudong merchant with two venues, a benefit, the roster of
  `tests.factories.people` and a device, built through the real admin API; `build_rating_world`
  adds a venue in Xuhui, and `visit`, `reverse`, `login` make real ledger events and sessions.
- The authorization matrix's world (`build_matrix_world`): the *victim* lives in Pudong
  (310115): merchant M, venue V, device D, staff account S, a veteran A with a redemption R at V.
  Every attacking role comes from another world (Xuhui, 310104) or has no relation at all, so
  none of them may touch a victim object; only the city admin (and, for the veteran's own
  records, veteran A) may. To extend it: add the objects your routes take to `MatrixWorld` and
  `build_matrix_world`, then name the path parameters that address them in
  `tests/authz/matrix.py::PATH_PARAMS`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID

import msgspec

import archive
import benefits.ratings
import identity
import merchants
from benefits import catalog
from identity import Principal
from merchants.creditcode import make_credit_code
from tests.factories.people import ROSTER
from tests.tokens import admin, auth_headers

__all__ = (
    "BENEFIT_DRAFT",
    "DAILY",
    "OTHER_DISTRICT",
    "ROLES",
    "VICTIM_DISTRICT",
    "Caller",
    "MatrixWorld",
    "RatingWorld",
    "World",
    "build_matrix_world",
    "build_rating_world",
    "build_world",
    "city_admin",
    "credit_code",
    "device_headers",
    "district_admin",
    "login",
    "make_merchant",
    "make_venue",
    "reverse",
    "staff",
    "suishen",
    "visit",
)

VICTIM_DISTRICT, OTHER_DISTRICT = "310115", "310104"


# --- callers and service-level builders -----------------------------------------------------------

class Caller(msgspec.Struct, frozen=True):
    """Structurally what identity.Principal is; the services accept either."""

    kind: str
    subject: UUID
    role: str | None = None
    district: str | None = None
    merchant_id: UUID | None = None
    venue_id: UUID | None = None


def city_admin() -> Caller:
    return Caller("admin", uuid.uuid4(), role="city")


def district_admin(district: str) -> Caller:
    return Caller("admin", uuid.uuid4(), role="district", district=district)


def staff(merchant_id: UUID) -> Caller:
    return Caller("staff", uuid.uuid4(), role="manager", merchant_id=merchant_id)


_serial = iter(range(1_000_000, 9_999_999))


def credit_code(district: str = "310115") -> str:
    """A fresh, valid 统一社会信用代码 (企业 registered in `district`)."""
    return make_credit_code(district, next(_serial))


async def make_merchant(conn, *, district: str = "310115", name: str = "上海博物馆", by=None) -> merchants.Merchant:
    return await merchants.create_merchant(
        conn,
        by or city_admin(),
        merchants.MerchantCreate(
            name=name, credit_code=credit_code(district), district=district, contact_name="王经理", contact_phone="021-63723500"
        ),
    )


async def make_venue(conn, merchant_id: UUID, *, district: str = "310115", name: str = "东馆", capacity: int | None = None, by=None) -> merchants.Venue:
    return await merchants.create_venue(
        conn,
        by or city_admin(),
        msgspec.convert(
            {
                "merchant_id": str(merchant_id),
                "name_zh": name,
                "name_en": "East Wing",
                "district": district,
                "address": "世纪大道 1 号",
                "location": {"lat": 31.2304, "lng": 121.4737},
                "domain": "culture",
                "opening_hours": [{"days": [2, 3, 4, 5, 6, 7], "opens": "09:00", "closes": "17:00"}],
                "daily_capacity": capacity,
            },
            merchants.VenueCreate,
        ),
    )


# --- the scan world, through the admin API --------------------------------------------------------

DAILY = {
    "code": "C8",
    "name_zh": "上海科技馆",
    "name_en": "Science Museum",
    "domain": "culture",
    "value": {"kind": "free"},
    "rule": {"op": "has_any_category", "categories": ["VETERAN", "DISABLED_SERVICEMAN"]},
    "companions": {"max": 1},
    "caps": [{"period": "day", "max": 1}],
    "status": "active",
}


class World(msgspec.Struct):
    venue_id: str
    other_venue_id: str
    merchant_id: str
    benefit_id: str
    device_headers: dict
    other_device_headers: dict
    device_id: str


async def device_headers(client, admin_headers, venue_id: str) -> tuple[dict, str]:
    made = await client.post("/v1/admin/devices", json={"venue_id": venue_id, "label": "gate"}, headers=admin_headers)
    assert made.status_code == 201, made.text
    device = made.json()
    token = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})
    assert token.status_code == 200, token.text
    return {"Authorization": "Bearer " + token.json()["access_token"]}, device["device_id"]


async def build_world(client, app, *, capacity: int | None = 500, benefit: dict | None = None) -> World:
    city = auth_headers(app, admin("city"))
    merchant = await client.post(
        "/v1/admin/merchants",
        json={"name": "上海科技馆", "credit_code": credit_code("310115"), "district": "310115",
              "contact_name": "王", "contact_phone": "021-68542000"},
        headers=city,
    )
    assert merchant.status_code == 201, merchant.text
    merchant_id = merchant.json()["id"]
    venues = []
    for name in ("主馆", "分馆"):
        venue = await client.post(
            "/v1/admin/venues",
            json={"merchant_id": merchant_id, "name_zh": name, "name_en": "Main", "district": "310115",
                  "address": "世纪大道 2000 号", "domain": "culture", "daily_capacity": capacity, "opening_hours": []},
            headers=city,
        )
        assert venue.status_code == 201, venue.text
        venues.append(venue.json()["id"])
    created = await client.post("/v1/admin/benefits", json={**(benefit or DAILY), "venue_ids": [venues[0]]}, headers=city)
    assert created.status_code == 201, created.text
    imported = await client.post(
        "/v1/admin/people/import", content=ROSTER.encode(), headers={"content-type": "text/csv", **city}
    )
    assert imported.status_code == 200, imported.text
    headers, device_id = await device_headers(client, city, venues[0])
    other, _ = await device_headers(client, city, venues[1])
    return World(venues[0], venues[1], merchant_id, created.json()["benefit_id"], headers, other, device_id)


def suishen(app, id_number: str) -> str:
    return app.state.city.dev.issue(id_number)


# --- the rating world: the scan world plus a venue in Xuhui ----------------------------------------

UNCAPPED = {**DAILY, "caps": []}  # any number of visits a day, so one person can fill pages


class RatingWorld(msgspec.Struct):
    pudong: World
    xuhui_venue_id: str
    xuhui_device_headers: dict


async def build_rating_world(client, app) -> RatingWorld:
    pudong = await build_world(client, app, capacity=None, benefit=UNCAPPED)
    city = auth_headers(app, admin("city"))
    merchant = await client.post(
        "/v1/admin/merchants",
        json={"name": "徐汇艺术馆", "credit_code": credit_code(OTHER_DISTRICT), "district": OTHER_DISTRICT,
              "contact_name": "李", "contact_phone": "021-64000000"},
        headers=city,
    )
    assert merchant.status_code == 201, merchant.text
    venue = await client.post(
        "/v1/admin/venues",
        json={"merchant_id": merchant.json()["id"], "name_zh": "徐汇馆", "district": OTHER_DISTRICT,
              "address": "漕溪北路 1 号", "domain": "culture", "opening_hours": []},
        headers=city,
    )
    assert venue.status_code == 201, venue.text
    xuhui_venue_id = venue.json()["id"]
    benefit = await client.post(
        "/v1/admin/benefits", json={**UNCAPPED, "code": "C9", "name_zh": "徐汇艺术馆", "venue_ids": [xuhui_venue_id]},
        headers=city,
    )
    assert benefit.status_code == 201, benefit.text
    headers, _ = await device_headers(client, city, xuhui_venue_id)
    return RatingWorld(pudong, xuhui_venue_id, headers)


async def visit(client, app, world: RatingWorld, id_number: str, *, xuhui: bool = False) -> str:
    """One accepted scan at the Pudong venue (or the Xuhui one); its redemption id."""
    venue_id, headers = (world.xuhui_venue_id, world.xuhui_device_headers) if xuhui else (
        world.pudong.venue_id, world.pudong.device_headers
    )
    scanned = await client.post("/v1/scans", json={"code": suishen(app, id_number), "venue_id": venue_id}, headers=headers)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["decision"] == "accepted", scanned.text
    return scanned.json()["redemption_id"]


async def reverse(client, world: RatingWorld, redemption_id: str) -> str:
    reversed_ = await client.post(
        f"/v1/scans/{redemption_id}/reversal", json={"reason": "误扫"}, headers=world.pudong.device_headers
    )
    assert reversed_.status_code == 200, reversed_.text
    return reversed_.json()["reversal_id"]


async def login(client, app, id_number: str) -> dict[str, str]:
    """A veteran's session, through the real 随申码 login."""
    session = await client.post("/v1/auth/suishen", json={"code": suishen(app, id_number)})
    assert session.status_code == 200, session.text
    return {"Authorization": "Bearer " + session.json()["access_token"]}


# --- the authorization matrix's world ---------------------------------------------------------------


ROLES = (
    "anonymous",
    "veteran",  # veteran A: owns the victim's veteran records
    "other_veteran",
    "other_device",  # a device of another merchant's venue
    "other_staff",  # staff of another merchant
    "other_district_admin",  # an admin of another district
    "city_admin",
)


@dataclass
class MatrixWorld:
    merchant_id: UUID
    venue_id: UUID
    device_id: UUID
    device_secret: str
    staff_id: UUID
    person_id: UUID
    redemption_id: UUID
    other_merchant_id: UUID
    other_venue_id: UUID
    other_device_id: UUID
    other_staff_id: UUID
    city_admin_id: UUID
    other_admin_id: UUID
    service_day: date
    benefit_id: UUID
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for other packages' objects (codes, ratings, people) keyed by name."""

    def victim_ids(self) -> list[str]:
        """Ids whose appearance in an answer to a foreign caller is a leak."""
        ids = (self.merchant_id, self.venue_id, self.device_id, self.staff_id, self.person_id, self.redemption_id)
        return [str(i) for i in ids] + [str(self.extra[k]) for k in ("rating_case_id",) if k in self.extra]

    def principal(self, role: str) -> Principal | None:
        return {
            "anonymous": None,
            "veteran": Principal(kind="veteran", subject=self.person_id),
            "other_veteran": Principal(kind="veteran", subject=uuid.uuid5(self.person_id, "other")),
            "other_device": Principal(
                kind="device",
                subject=self.other_device_id,
                merchant_id=self.other_merchant_id,
                venue_id=self.other_venue_id,
                secret_generation=1,
            ),
            "other_staff": Principal(kind="staff", subject=self.other_staff_id, role="manager", merchant_id=self.other_merchant_id),
            "other_district_admin": Principal(kind="admin", subject=self.other_admin_id, role="district", district=OTHER_DISTRICT),
            "city_admin": Principal(kind="admin", subject=self.city_admin_id, role="city"),
        }[role]

    def headers(self, app, role: str) -> dict[str, str]:
        principal = self.principal(role)
        return {} if principal is None else auth_headers(app, principal)


BENEFIT_DRAFT = {
    "code": "T1",
    "name_zh": "残疾军人免费乘坐本市公交、电车",
    "name_en": "Free city bus for disabled servicemen",
    "domain": "transit",
    "value": {"kind": "free"},
    "rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
    "status": "active",
}


async def _account(conn, **fields) -> UUID:
    record, _ = await identity.create_account(conn, identity.NewAccount(password="correct horse battery", **fields))
    return record.id


async def build_matrix_world(conn, redis, *, keyring: identity.KeyRing) -> MatrixWorld:
    city_admin_id = await _account(conn, kind="admin", username=f"city{uuid.uuid4().hex[:8]}", role="city")
    other_admin_id = await _account(
        conn, kind="admin", username=f"xuhui{uuid.uuid4().hex[:8]}", role="district", district=OTHER_DISTRICT
    )
    city = Principal(kind="admin", subject=city_admin_id, role="city")
    key = b"authz-matrix-key" * 2

    async def merchant_venue_device(district: str, name: str):
        merchant = await merchants.create_merchant(
            conn, city, merchants.MerchantCreate(name=name, credit_code=credit_code(district), district=district, contact_name="联系人", contact_phone="021-12345678")
        )
        venue = await merchants.create_venue(
            conn, city, msgspec.convert(
                {"merchant_id": str(merchant.id), "name_zh": name + "馆", "district": district, "address": "某路 1 号", "domain": "culture"},
                merchants.VenueCreate,
            )
        )
        device = await merchants.provision_device(
            conn, redis, city, merchants.DeviceCreate(venue_id=venue.id, label="gate"), hmac_key=key, api_base_url="http://test"
        )
        staff = await _account(conn, kind="staff", username=f"staff{uuid.uuid4().hex[:8]}", role="manager", merchant_id=merchant.id)
        return merchant, venue, device, staff

    m, v, d, s = await merchant_venue_device(VICTIM_DISTRICT, "受害")
    m2, v2, d2, s2 = await merchant_venue_device(OTHER_DISTRICT, "别家")
    benefit = await catalog.create_benefit(
        conn, catalog.decode_draft(BENEFIT_DRAFT), catalog.Actor(kind="system", id="authz-matrix"), venue_ids=[v.id]
    )
    person_id = uuid.uuid4()
    day = date(2026, 11, 3)
    redemption_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, device_id, jti, code_source, value_kind, value_fen)
        VALUES ($1, 'redemption', $2, $3, $4, $5, 1, 'T1', $6, $7, $8, $9, 'cj', 'free_entry', 3000)
        """,
        redemption_id, datetime(2026, 11, 3, 2, tzinfo=timezone.utc), day, person_id, benefit.benefit_id, v.id, m.id,
        d.device_id, uuid.uuid4().hex,
    )
    code = await identity.issue_code(redis, person_id, keyring=keyring)
    world = MatrixWorld(
        merchant_id=m.id, venue_id=v.id, device_id=d.device_id, device_secret=d.secret, staff_id=s,
        person_id=person_id, redemption_id=redemption_id,
        other_merchant_id=m2.id, other_venue_id=v2.id, other_device_id=d2.device_id, other_staff_id=s2,
        city_admin_id=city_admin_id, other_admin_id=other_admin_id, service_day=day, benefit_id=benefit.benefit_id,
    )
    world.extra["code_jti"] = code.jti
    # A 差评 of R by A: an open case in the victim's district (310115).
    await benefits.ratings.rate_redemption(conn, person_id, redemption_id, benefits.ratings.RatingCreate(stars=1, comment="排队太久"))
    world.extra["rating_case_id"] = await conn.fetchval(
        "SELECT c.id FROM rating_cases c JOIN ratings g ON g.id = c.rating_id WHERE g.redemption_id = $1", redemption_id
    )
    # The audit archive: the victim district's newest entry, and a signed checkpoint over it all.
    world.extra["audit_seq"] = await conn.fetchval("SELECT max(seq) FROM audit_log WHERE district = $1", VICTIM_DISTRICT)
    async with conn.transaction():
        world.extra["checkpoint_size"] = (await archive.cut_checkpoint(conn, keyring)).tree_size
    return world
