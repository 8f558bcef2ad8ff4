"""Who may see and change which merchant, venue, device and staff account: decided here, once.

Every route of the merchants package, and the ledger views that read a merchant (statements),
reach an object only through one of the functions below, so a new path cannot forget the scope.

- A city admin reaches everything; an auditor reads (city-wide, or their district if they have
  one) and never writes.
- A district admin **sees** the venues in their district and the merchants their district
  onboarded (`merchants.district`) or that have a venue there. They **change** venues only inside
  their district, and merchants only if their district onboarded them. Everything a merchant owns
  is reached through it: its staff, and **new venues** — a district admin attaches venues only to
  merchants their district onboarded (a venue in their district for another district's merchant is
  the city's to create), so no district can plant a venue, and with it visibility, on another
  district's merchant. A device is reached through its venue.
- Staff reach their own merchant's venues and devices only.
- What a caller may not see answers the same 404 as an id that does not exist (no existence
  oracle). What they may see but not change answers 403 `out-of-scope`.
- A district admin token without a district reaches nothing (fails closed).
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import asyncpg

from foundation.errors import Forbidden
from merchants import db
from merchants.errors import DeviceNotFound, MerchantNotFound, NotYours, VenueNotFound

__all__ = (
    "Caller",
    "admin_district",
    "list_bounds",
    "managed_merchant",
    "require_admin_writer",
    "require_device_manager",
    "visible_device",
    "visible_merchant",
    "visible_venue",
)


class Caller(Protocol):
    """What the rules need of `identity.Principal` (kept structural so tests and tools can build one)."""

    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> UUID: ...
    @property
    def role(self) -> str | None: ...
    @property
    def district(self) -> str | None: ...
    @property
    def merchant_id(self) -> UUID | None: ...
    @property
    def venue_id(self) -> UUID | None: ...


def admin_district(caller: Caller) -> str | None:
    """The district an admin is confined to; None for city-wide admins."""
    if caller.role == "city":
        return None
    if caller.role == "district" and not caller.district:
        raise Forbidden("A district admin account without a district reaches nothing")
    return caller.district


def list_bounds(caller: Caller) -> tuple[str | None, UUID | None]:
    """The (district, merchant) a list is confined to, None = unbounded: an admin's district, a
    staff member's merchant. Nobody else lists merchants' objects."""
    if caller.kind == "admin":
        return admin_district(caller), None
    if caller.kind == "staff" and caller.merchant_id is not None:
        return None, caller.merchant_id
    raise Forbidden()


def require_admin_writer(caller: Caller) -> None:
    if caller.kind != "admin" or caller.role not in ("city", "district"):
        raise Forbidden("Only city and district admins may change merchants and venues")


def require_device_manager(caller: Caller) -> None:
    """Devices are managed (provisioned, rolled, revoked, their setup QR fetched) by the merchant's
    staff and by admins who write; an auditor reads them only."""
    if caller.kind == "staff":
        return
    if caller.kind != "admin":
        raise Forbidden("Only admins and merchant staff may manage devices")
    require_admin_writer(caller)


def _sees_venue(caller: Caller, venue: asyncpg.Record) -> bool:
    if caller.kind == "admin":
        district = admin_district(caller)
        return district is None or venue["district"] == district
    if caller.kind == "staff":
        return caller.merchant_id is not None and venue["merchant_id"] == caller.merchant_id
    return False


async def visible_venue(conn: asyncpg.Connection, caller: Caller, venue_id: UUID, *, for_update: bool = False) -> asyncpg.Record:
    """The venue's row, or VenueNotFound when it does not exist or is outside the caller's scope."""
    venue = await db.get_venue(conn, venue_id, for_update=for_update)
    if venue is None or not _sees_venue(caller, venue):
        raise VenueNotFound()
    return venue


async def visible_device(conn: asyncpg.Connection, caller: Caller, device_id: UUID, *, for_update: bool = False) -> asyncpg.Record:
    """The device's row (with its venue's district): seen by whoever sees its venue."""
    device = await db.get_device(conn, device_id, for_update=for_update)
    if device is None or not _sees_venue(caller, device):
        raise DeviceNotFound()
    return device


async def visible_merchant(conn: asyncpg.Connection, caller: Caller, merchant_id: UUID, *, for_update: bool = False) -> asyncpg.Record:
    """The merchant's row, or MerchantNotFound when it does not exist or is outside the caller's scope."""
    merchant = await db.get_merchant(conn, merchant_id, for_update=for_update)
    if merchant is not None:
        if caller.kind == "admin":
            district = admin_district(caller)
            if district is None or merchant["district"] == district or await db.merchant_visible_in_district(conn, merchant_id, district):
                return merchant
        elif caller.kind == "staff" and caller.merchant_id == merchant_id:
            return merchant
    raise MerchantNotFound()


async def managed_merchant(
    conn: asyncpg.Connection, caller: Caller, merchant_id: UUID, *, for_update: bool = False, why: str
) -> asyncpg.Record:
    """A merchant the caller may change, or attach venues and staff to: for a district admin, one
    their district onboarded. Unseen → 404 like a missing id; seen but another's → 403 (`why`)."""
    require_admin_writer(caller)
    merchant = await visible_merchant(conn, caller, merchant_id, for_update=for_update)
    district = admin_district(caller)
    if district is not None and merchant["district"] != district:
        raise NotYours(why)
    return merchant
