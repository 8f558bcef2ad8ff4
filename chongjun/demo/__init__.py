"""The demo data set: the reference catalog (T1–T12, C1–C13, L1–L16) with its venues across
Shanghai's 16 districts, the merchants that run them, a demo merchant's scanner devices, and
synthetic people and accounts where those packages provide them.

Deterministic (the same input data every time) and idempotent: each part is written in one
transaction and skipped when it is already there, so running it twice changes nothing.

A tool that uses the runtime, not part of it: only the CLI imports it (`chongjun seed-demo`, and
`serve` in dev on an empty database), and the matching bench gets its catalog from the CLI.
The reference catalog it writes is `catalog.json` beside this file.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis

from benefits import catalog, stats
from foundation import vocabulary
from foundation.settings import Settings
import identity
from identity.pii import id_checksum_char
import merchants
from merchants.creditcode import make_credit_code

__all__ = ("DEMO_ACTOR", "NAMED_PEOPLE", "load_reference_catalog", "seed_demo", "seed_demo_if_empty")

# Fixed ids, so the demo's actors read the same in every audit log.
_SEED_SUBJECT = UUID("00000000-0000-4000-8000-00000000d3e0")
DEMO_ACTOR = catalog.Actor("system", "seed-demo")
DEMO_API_BASE_URL = "http://127.0.0.1:8000"
"""Where `./dev serve` answers by default: the demo devices' setup links point there."""


class _SeedCaller(msgspec.Struct, frozen=True):
    """The seed acts as a city admin towards the merchants package (structurally a Principal)."""

    kind: str = "admin"
    subject: UUID = _SEED_SUBJECT
    role: str | None = "city"
    district: str | None = None
    merchant_id: UUID | None = None
    venue_id: UUID | None = None


# Operators of the demo venues; the first is "the demo merchant" with devices (and staff).
_MERCHANTS: list[dict[str, Any]] = [
    {"key": "demo", "name": "崇军魔方演示商户（上海文博场馆）", "district": "310101", "contact_name": "演示联系人", "contact_phone": "021-00000001",
     "domains": {"culture"}},
    {"key": "transit", "name": "上海公共交通演示运营单位", "district": "310106", "contact_name": "交通联系人", "contact_phone": "021-00000002",
     "domains": {"transit"}},
    {"key": "parks", "name": "上海公园景区演示管理单位", "district": "310115", "contact_name": "景区联系人", "contact_phone": "021-00000003",
     "domains": {"tourism"}},
]
_DEMO_DEVICE_VENUES = ("cpc_first", "shmuseum", "sstm", "natural_history")

class CatalogVenue(msgspec.Struct, frozen=True):
    key: str
    name_zh: str
    name_en: str
    district: str
    address: str
    lat: float
    lng: float
    domain: str
    opening_hours: list[dict[str, Any]]
    daily_capacity: int | None = None


class ReferenceCatalog(msgspec.Struct, frozen=True):
    source: str
    venues: list[CatalogVenue]
    benefits: list[dict[str, Any]]


def load_reference_catalog() -> ReferenceCatalog:
    """`catalog.json` beside this file: every item of the reference catalog and the venues it names."""
    raw = resources.files(__name__).joinpath("catalog.json").read_bytes()
    return msgspec.json.decode(raw, type=ReferenceCatalog)


async def _seed_catalog(conn: asyncpg.Connection, redis: aioredis.Redis, settings: Settings) -> list[str] | None:
    """Merchants, venues, benefits and the demo devices; None when the catalog is already there."""
    if await catalog.get_benefit_by_code(conn, "T1") is not None:
        return None
    reference = load_reference_catalog()
    caller = _SeedCaller()
    lines: list[str] = []
    async with conn.transaction():
        merchant_ids: dict[str, UUID] = {}
        for serial, spec in enumerate(_MERCHANTS, start=1):
            merchant = await merchants.create_merchant(
                conn,
                caller,
                merchants.MerchantCreate(
                    name=spec["name"],
                    credit_code=make_credit_code(spec["district"], serial),
                    district=spec["district"],
                    contact_name=spec["contact_name"],
                    contact_phone=spec["contact_phone"],
                ),
            )
            merchant_ids[spec["key"]] = merchant.id
        venue_ids: dict[str, UUID] = {}
        for venue in reference.venues:
            owner = next(m["key"] for m in _MERCHANTS if venue.domain in m["domains"])
            created = await merchants.create_venue(
                conn,
                caller,
                msgspec.convert(
                    {
                        "merchant_id": str(merchant_ids[owner]),
                        "name_zh": venue.name_zh,
                        "name_en": venue.name_en,
                        "district": venue.district,
                        "address": venue.address,
                        "location": {"lat": venue.lat, "lng": venue.lng},
                        "domain": venue.domain,
                        "opening_hours": venue.opening_hours,
                        "daily_capacity": venue.daily_capacity,
                    },
                    merchants.VenueCreate,
                ),
            )
            venue_ids[venue.key] = created.id
        for item in reference.benefits:
            body = {k: v for k, v in item.items() if k != "venues"}
            draft = catalog.decode_draft({**body, "status": "active"})
            await catalog.create_benefit(
                conn, draft, DEMO_ACTOR, venue_ids=[venue_ids[key] for key in item["venues"]]
            )
        lines.append(
            f"catalog: {len(reference.benefits)} benefits (T1–T12, C1–C13, L1–L16), {len(reference.venues)} venues "
            f"in {len({v.district for v in reference.venues})} districts, {len(_MERCHANTS)} merchants"
        )
        hmac_key = merchants.device_hmac_key(settings)
        for key in _DEMO_DEVICE_VENUES:
            device = await merchants.provision_device(
                conn,
                redis,
                caller,
                merchants.DeviceCreate(venue_id=venue_ids[key], label=f"演示闸机 {key}"),
                hmac_key=hmac_key,
                api_base_url=DEMO_API_BASE_URL,
            )
            venue = next(v for v in reference.venues if v.key == key)
            lines.append(f"device at {venue.name_zh} (venue {venue_ids[key]}): device_id={device.device_id} secret={device.secret}")
            payload = merchants.setup_payload(
                device.device_id, device.secret, venue_ids[key], venue.name_zh, api_base_url=DEMO_API_BASE_URL
            )
            lines.append(f"  scanner: {merchants.setup_link(payload)}")
    await catalog.catalog_changed(redis)
    return lines


# Dev-only demo credentials (printed in the summary; the seed refuses to run in production).
_ACCOUNTS = (
    ("admin", "demo-admin", "demo-admin-password", "city", None),
    ("admin", "demo-xuhui-admin", "demo-xuhui-password", "district", "310104"),
    ("admin", "demo-auditor", "demo-auditor-password", "auditor", None),
    ("staff", "demo-staff", "demo-staff-password", "manager", None),
)


async def _demo_merchant_id(conn: asyncpg.Connection) -> UUID | None:
    """The demo merchant: the operator of C1's venue (中共一大纪念馆)."""
    c1 = await catalog.get_benefit_by_code(conn, "C1")
    view = await catalog.get_benefit_view(conn, c1.benefit_id) if c1 else None
    if not view or not view.venue_ids:
        return None
    venue = await merchants.find_venue(conn, view.venue_ids[0])
    return venue.merchant_id if venue else None


async def _seed_accounts(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    merchant_id = await _demo_merchant_id(conn)
    secrets = identity.SecretStore.from_settings(settings)
    lines = []
    for kind, username, password, role, district in _ACCOUNTS:
        new = identity.NewAccount(
            kind=kind,
            username=username,
            password=password,
            role=role,
            district=district,
            merchant_id=merchant_id if kind == "staff" else None,
        )
        try:
            async with conn.transaction():
                await identity.create_account(conn, new, secrets=secrets)
        except identity.AccountExists:
            continue
        where = f" {district}" if district else (" of the demo merchant" if kind == "staff" else "")
        lines.append(f"{kind} ({role}{where}): username={username} password={password}")
    return lines


# --- people ---------------------------------------------------------------------------------------

_PEOPLE_SEED = 2026
_PEOPLE_TODAY = date(2026, 11, 27)  # fixed, so the same rows are generated every run
_SYNTHETIC_PEOPLE = 1900


def _id_number(region: str, born: date, serial: int) -> str:
    """A well-formed GB 11643 citizen number (ISO 7064 MOD 11-2 check) for a fictitious person."""
    first17 = f"{region}{born:%Y%m%d}{serial:03d}"
    return first17 + id_checksum_char(first17)


def _row(region: str, born: date, serial: int, name: str, categories: str, **fields: str) -> dict[str, str]:
    card_kind = fields.get("card_kind") or (
        "SURVIVOR_CARD" if categories.split("|")[0] in vocabulary.SURVIVOR_CATEGORIES
        else "NONE" if categories in ("ACTIVE_SERVICE", "SERVICE_FAMILY", "FIREFIGHTER") else "VETERAN_CARD"
    )
    return {
        "id_number": _id_number(region, born, serial),
        "name": name,
        "categories": categories,
        "disability_grade": fields.get("disability_grade", ""),
        "disability_cause": fields.get("disability_cause", ""),
        "card_kind": card_kind,
        "card_status": fields.get("card_status", "ACTIVE"),
        "card_province": fields.get("card_province", vocabulary.SHANGHAI_PROVINCE),
        "district": fields.get("district", region if region in vocabulary.SHANGHAI_DISTRICTS else "310101"),
        "birth_date": born.isoformat(),
    }


# The people the summary names, with ready `suishen issue` lines (fictitious ID numbers).
NAMED_PEOPLE = (
    ("grade-2 disabled serviceman (因战)", _row("310104", date(1968, 3, 9), 101, "张建国", "VETERAN|DISABLED_SERVICEMAN",
                                                  disability_grade="2", disability_cause="WAR")),
    ("plain veteran", _row("310115", date(1975, 6, 18), 102, "李伟", "VETERAN")),
    ("martyr's family (烈士遗属)", _row("310110", date(1958, 9, 30), 103, "王秀英", "MARTYR_FAMILY")),
    ("active service member", _row("310106", date(1998, 8, 1), 104, "陈强", "ACTIVE_SERVICE")),
    ("veteran with a Jiangsu card (L16)", _row("320102", date(1970, 1, 15), 105, "赵军", "VETERAN",
                                               card_province="320000", district="310101")),
)


def _coverage_rows() -> list[dict[str, str]]:
    """Every category, every disability grade and cause, every district, at least once."""
    rows = [row for _, row in NAMED_PEOPLE]
    serial = 200
    districts = list(vocabulary.SHANGHAI_DISTRICTS)
    for i, category in enumerate(sorted(vocabulary.CATEGORIES)):
        categories = category if category not in vocabulary.VETERAN_SUBKINDS else f"VETERAN|{category}"
        extra = {"disability_grade": "5", "disability_cause": "DUTY"} if category == "DISABLED_SERVICEMAN" else {}
        born = date(1990, 1, 1) if category in ("ACTIVE_SERVICE", "FIREFIGHTER") else date(1950 + i, 2, 2)
        rows.append(_row(districts[i % 16], born, serial, "演示" + "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午"[i], categories, **extra))
        serial += 1
    for grade in range(1, 11):
        for j, cause in enumerate(sorted(vocabulary.DISABILITY_CAUSES)):
            rows.append(
                _row(districts[(grade * 3 + j) % 16], date(1960, grade, 10 + j), serial, "演示残疾", "VETERAN|DISABLED_SERVICEMAN",
                     disability_grade=str(grade), disability_cause=cause)
            )
            serial += 1
    for district in districts:
        rows.append(_row(district, date(1972, 5, 5), serial, "演示老兵", "VETERAN"))
        serial += 1
    return rows


async def _seed_people(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    done = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM audit_log WHERE action = 'people.import' AND actor_id = 'seed-demo')"
    )
    if done:
        return ["people: already present, unchanged"]
    rows = _coverage_rows() + list(identity.synthetic_roster(_SYNTHETIC_PEOPLE, seed=_PEOPLE_SEED, today=_PEOPLE_TODAY))
    report = await identity.import_roster(
        conn,
        identity.pii_vault(settings),
        identity.synthetic_roster_csv(0, rows=rows),
        valid_only=True,
        actor_kind="system",
        actor_id="seed-demo",
        today=_PEOPLE_TODAY,
    )
    lines = [f"people: {report.inserted} imported ({report.rejected} refused) covering every category, grade and district"]
    for label, row in NAMED_PEOPLE:
        lines.append(f"  {label}: chongjun suishen issue --id-number {row['id_number']}")
    return lines


async def seed_demo(conn: asyncpg.Connection, redis: aioredis.Redis, settings: Settings) -> str:
    """Seed every part that is missing; the summary of what was written (and its credentials)."""
    if settings.is_production:
        raise RuntimeError("seed-demo writes well-known demo credentials; it does not run in production")
    lines = ["chongjun demo data"]
    seeded = await _seed_catalog(conn, redis, settings)
    lines += seeded if seeded is not None else ["catalog: already present, unchanged"]
    accounts = await _seed_accounts(conn, settings)
    lines += accounts or ["accounts: already present, unchanged"]
    lines += await _seed_people(conn, settings)
    # The console's dashboard shows 免申即享 reach from the first start (the CLI's `stats refresh`).
    refreshed = await stats.refresh_stats(conn)
    lines.append(f"stats: reach computed over {refreshed.people} people")
    return "\n".join(lines)


async def seed_demo_if_empty(conn: asyncpg.Connection, redis: aioredis.Redis, settings: Settings) -> str | None:
    """`serve` in dev: seed an empty database (no benefits yet); None when there was data."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM benefits)"):
        return None
    return await seed_demo(conn, redis, settings)
