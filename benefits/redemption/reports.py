"""What staff see of the ledger: their redemptions, a daily report and sealed monthly statements.

Every query is confined to the caller's merchant (staff) before any filter applies, and no
person id, name or other personal data leaves here: a merchant learns counts, benefits and
reason codes (DESIGN invariant 6).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from benefits import catalog
from benefits.redemption import db
from benefits.redemption.archive import sealed_once
from benefits.redemption.errors import MonthArchived
from benefits.redemption.types import (
    BenefitLine,
    DailyReport,
    RedemptionEntry,
    SealedStatement,
    Statement,
    VenueReport,
    VenueStatement,
)
from foundation.audit import write_audit
from foundation.errors import Forbidden
from identity import Signer
from foundation.paging import Page, decode_cursor, fetch_size, page_of
from merchants import (
    Caller,
    InvalidPeriod,
    MerchantNotFound,
    VenueNotFound,
    admin_district,
    find_merchant,
    find_venue,
    merchant_venues,
    visible_merchant,
)

__all__ = ("ISSUER", "SHANGHAI", "daily_report", "list_redemptions", "monthly_statement")

SHANGHAI = ZoneInfo("Asia/Shanghai")
ISSUER = "上海市退役军人事务局"
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _merchant_of(caller: Caller) -> UUID:
    if caller.kind != "staff" or caller.merchant_id is None:
        raise Forbidden("Merchant views are for the merchant's staff")
    return caller.merchant_id


async def _own_venue(conn: asyncpg.Connection, merchant_id: UUID, venue_id: UUID | None) -> None:
    if venue_id is None:
        return
    venue = await find_venue(conn, venue_id)
    if venue is None or venue.merchant_id != merchant_id:
        raise VenueNotFound()


async def list_redemptions(
    conn: asyncpg.Connection,
    caller: Caller,
    *,
    limit: int,
    cursor: str | None,
    day_from: date | None = None,
    day_to: date | None = None,
    venue_id: UUID | None = None,
    benefit_id: UUID | None = None,
    result: str | None = None,
) -> Page[RedemptionEntry]:
    merchant_id = _merchant_of(caller)
    await _own_venue(conn, merchant_id, venue_id)
    if day_from and day_to and day_from > day_to:
        raise InvalidPeriod("date_from is after date_to")
    rows = await db.list_ledger_entries(
        conn,
        merchant_id=merchant_id,
        venue_id=venue_id,
        benefit_id=benefit_id,
        day_from=day_from,
        day_to=day_to,
        result=result,
        before=decode_cursor(cursor),
        limit=fetch_size(limit),
    )
    return page_of(rows, limit, partial(msgspec.convert, type=RedemptionEntry), sort_key="at")


async def _lines(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> dict[UUID, list[BenefitLine]]:
    names: dict[UUID, str | None] = {}
    for benefit_id in {row["benefit_id"] for row in rows}:
        version = await catalog.get_benefit(conn, benefit_id)  # cached per version in process
        names[benefit_id] = version.name_zh if version is not None else None
    by_venue: dict[UUID, list[BenefitLine]] = {}
    for row in rows:
        by_venue.setdefault(row["venue_id"], []).append(
            BenefitLine(
                benefit_id=row["benefit_id"],
                benefit_code=row["benefit_code"],
                benefit_name_zh=names[row["benefit_id"]],
                redemptions=row["redemptions"],
                reversals=row["reversals"],
                net_count=row["redemptions"] - row["reversals"],
                net_admitted=row["net_admitted"],
                net_value_fen=row["net_value_fen"],
            )
        )
    return by_venue


def _venue_totals(venue: asyncpg.Record, lines: dict[UUID, list[BenefitLine]]) -> dict[str, Any]:
    """What a daily report and a statement say of one venue: who it is, its lines and their sums."""
    mine = lines.get(venue["id"], [])
    return {
        "venue_id": venue["id"],
        "venue_name_zh": venue["name_zh"],
        "district": venue["district"],
        "lines": mine,
        "net_count": sum(line.net_count for line in mine),
        "net_value_fen": sum(line.net_value_fen for line in mine),
    }


async def daily_report(conn: asyncpg.Connection, caller: Caller, day: date) -> DailyReport:
    """Per venue and benefit, one Asia/Shanghai service day; refused scans by reason."""
    merchant_id = _merchant_of(caller)
    venues = await merchant_venues(conn, merchant_id)
    ids = [v["id"] for v in venues]
    lines = await _lines(conn, await db.ledger_totals(conn, venue_ids=ids, day_from=day, day_to=day))
    rejected: dict[UUID, dict[str, int]] = {}
    for row in await db.rejected_totals(conn, venue_ids=ids, day=day):
        rejected.setdefault(row["venue_id"], {})[row["reason"]] = row["n"]
    reports = [VenueReport(**_venue_totals(v, lines), rejected=rejected.get(v["id"], {})) for v in venues]
    return DailyReport(merchant_id=merchant_id, date=day, timezone="Asia/Shanghai", venues=reports)


def parse_month(month: str) -> tuple[date, date]:
    match = _MONTH.match(month)
    if not match:
        raise InvalidPeriod("The period is a month written YYYY-MM")
    start = date(int(match[1]), int(match[2]), 1)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following - timedelta(days=1)


async def monthly_statement(
    conn: asyncpg.Connection,
    caller: Caller,
    month: str,
    *,
    key: Signer,
    jwks_url: str,
    reversal_window_seconds: int,
    venue_id: UUID | None = None,
    merchant_id: UUID | None = None,
    now: datetime | None = None,
) -> SealedStatement:
    """The month's settlement statement, per venue, sealed with the bureau's key.

    Staff get their own merchant's; admins name the merchant, and a district admin's statement
    holds only the merchant's venues in their district.
    """
    district = None
    if caller.kind == "admin" and merchant_id is not None:
        await visible_merchant(conn, caller, merchant_id)
        district = admin_district(caller)
    else:
        merchant_id = _merchant_of(caller)
    start, end = parse_month(month)
    now = now or datetime.now(timezone.utc)
    if start > now.astimezone(SHANGHAI).date():
        raise InvalidPeriod("That month has not begun")
    if await db.month_archived(conn, start):  # its rows are out of the ledger: a statement now would miss them
        raise MonthArchived(f"The ledger of {month} is archived; its sealed statements are kept")
    merchant = await find_merchant(conn, merchant_id)
    if merchant is None:
        raise MerchantNotFound()
    await _own_venue(conn, merchant_id, venue_id)
    venues = [
        v
        for v in await merchant_venues(conn, merchant_id)
        if (venue_id is None or v["id"] == venue_id) and (district is None or v["district"] == district)
    ]
    if venue_id is not None and not venues:
        raise VenueNotFound()
    lines = await _lines(conn, await db.ledger_totals(conn, venue_ids=[v["id"] for v in venues], day_from=start, day_to=end))
    sections = [VenueStatement(**_venue_totals(v, lines)) for v in venues]
    closes = datetime.combine(end + timedelta(days=1), datetime.min.time(), SHANGHAI)
    statement_id = (
        f"CJ-ST-{start:%Y%m}-{merchant_id.hex[:12]}"
        + (f"-{venue_id.hex[:12]}" if venue_id else "")
        + (f"-D{district}" if district else "")
    )
    statement = Statement(
        statement_id=statement_id,
        issuer=ISSUER,
        merchant_id=merchant_id,
        merchant_name=merchant.name,
        merchant_credit_code=merchant.credit_code,
        month=month,
        period_start=start,
        period_end=end,
        timezone="Asia/Shanghai",
        currency="CNY",
        value_unit="fen",
        final=now >= closes + timedelta(seconds=reversal_window_seconds),
        issued_at=now.astimezone(timezone.utc).replace(microsecond=0),
        venues=sections,
        net_count=sum(s.net_count for s in sections),
        net_value_fen=sum(s.net_value_fen for s in sections),
    )
    # Sealed once per content and archived: a repeat request gets the archived document back.
    sealed = await sealed_once(conn, caller, statement, key=key, jwks_url=jwks_url, district=district)
    # Every download is recorded (the seal itself once, by sealed_once).
    await write_audit(
        conn, actor_kind=caller.kind, actor_id=str(caller.subject), actor_role=caller.role,
        actor_district=caller.district, action="statement.download", object_kind="statement",
        object_id=statement_id, district=district or merchant.district,
        detail={"merchant_id": str(merchant_id), "month": month, "venues": len(sections), "final": statement.final},
    )
    return sealed
