"""The objects the authorization matrix attacks, and the callers that attack them.

The *victim* world lives in Pudong (310115): merchant M, venue V, device D, staff account S, a
veteran A with a redemption R at V. Every attacking role comes from another world (Xuhui,
310104) or has no relation at all, so none of them may touch a victim object; only the city
admin (and, for the veteran's own records, veteran A) may.

To extend: add the objects your routes take to `World` and `build_world`, then name the path
parameters that address them in `tests/authz/matrix.py::PATH_PARAMS`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any
from uuid import UUID

import msgspec

from benefits import catalog
import benefits.ratings
import identity
import merchants
from identity import Principal
from tests import tokens

__all__ = ("ROLES", "World", "build_world")

VICTIM_DISTRICT, OTHER_DISTRICT = "310115", "310104"

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
class World:
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
        return {} if principal is None else tokens.auth_headers(app, principal)


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


async def build_world(conn, redis) -> World:
    city_admin_id = await _account(conn, kind="admin", username=f"city{uuid.uuid4().hex[:8]}", role="city")
    other_admin_id = await _account(
        conn, kind="admin", username=f"xuhui{uuid.uuid4().hex[:8]}", role="district", district=OTHER_DISTRICT
    )
    city = Principal(kind="admin", subject=city_admin_id, role="city")
    key = b"authz-matrix-key" * 2

    async def merchant_venue_device(district: str, name: str):
        from tests.merchants.support import credit_code

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
    code = await identity.issue_code(redis, person_id)
    world = World(
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
    return world
