"""Builders for the merchants tests: callers and a small world of merchants, venues and devices."""

from __future__ import annotations

import uuid
from uuid import UUID

import msgspec

import merchants
from merchants.creditcode import make_credit_code

__all__ = ("Caller", "city_admin", "credit_code", "district_admin", "make_merchant", "make_venue", "staff")


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
