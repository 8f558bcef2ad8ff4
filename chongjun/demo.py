"""The demo data set: the reference catalog (T1–T12, C1–C13, L1–L16) with its venues across
Shanghai's 16 districts, the merchants that run them, a demo merchant's scanner devices, and
synthetic people and accounts where those packages provide them.

Deterministic (the same input data every time) and idempotent: each part is written in one
transaction and skipped when it is already there, so running it twice changes nothing.
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis

import benefits
import merchants
from chongjun.config import Settings

__all__ = ("DEMO_ACTOR", "load_reference_catalog", "seed_demo", "seed_demo_if_empty")

# Fixed ids, so the demo's actors read the same in every audit log.
_SEED_SUBJECT = UUID("00000000-0000-4000-8000-00000000d3e0")
DEMO_ACTOR = benefits.Actor("system", "seed-demo")


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

_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _credit_code(district: str, serial: int) -> str:
    """A well-formed 统一社会信用代码 (GB 32100-2015 check character) for a demo merchant."""
    first17 = f"91{district}MA{serial:07d}"
    total = sum(_CREDIT_CHARSET.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return first17 + _CREDIT_CHARSET[(31 - total % 31) % 31]


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
    """`benefits/data/catalog.json`: every item of the reference catalog and the venues it names."""
    raw = resources.files("benefits").joinpath("data/catalog.json").read_bytes()
    return msgspec.json.decode(raw, type=ReferenceCatalog)


async def _seed_catalog(conn: asyncpg.Connection, redis: aioredis.Redis, settings: Settings) -> list[str] | None:
    """Merchants, venues, benefits and the demo devices; None when the catalog is already there."""
    if await benefits.get_benefit_by_code(conn, "T1") is not None:
        return None
    catalog = load_reference_catalog()
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
                    credit_code=_credit_code(spec["district"], serial),
                    district=spec["district"],
                    contact_name=spec["contact_name"],
                    contact_phone=spec["contact_phone"],
                ),
            )
            merchant_ids[spec["key"]] = merchant.id
        venue_ids: dict[str, UUID] = {}
        for venue in catalog.venues:
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
        for item in catalog.benefits:
            body = {k: v for k, v in item.items() if k != "venues"}
            draft = benefits.decode_draft({**body, "status": "active"})
            await benefits.create_benefit(
                conn, draft, DEMO_ACTOR, venue_ids=[venue_ids[key] for key in item["venues"]]
            )
        lines.append(
            f"catalog: {len(catalog.benefits)} benefits (T1–T12, C1–C13, L1–L16), {len(catalog.venues)} venues "
            f"in {len({v.district for v in catalog.venues})} districts, {len(_MERCHANTS)} merchants"
        )
        hmac_key = merchants.device_hmac_key(settings)
        for key in _DEMO_DEVICE_VENUES:
            device = await merchants.provision_device(
                conn,
                redis,
                caller,
                merchants.DeviceCreate(venue_id=venue_ids[key], label=f"演示闸机 {key}"),
                hmac_key=hmac_key,
                api_base_url="http://127.0.0.1:8000",
            )
            venue = next(v for v in catalog.venues if v.key == key)
            lines.append(f"device at {venue.name_zh} (venue {venue_ids[key]}): device_id={device.device_id} secret={device.secret}")
    await benefits.catalog_changed(redis)
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
    c1 = await benefits.get_benefit_by_code(conn, "C1")
    view = await benefits.get_benefit_view(conn, c1.benefit_id) if c1 else None
    if not view or not view.venue_ids:
        return None
    venue = await merchants.find_venue(conn, view.venue_ids[0])
    return venue.merchant_id if venue else None


async def _seed_accounts(conn: asyncpg.Connection, settings: Settings) -> list[str]:
    from identity import AccountExists, NewAccount, SecretStore, create_account

    merchant_id = await _demo_merchant_id(conn)
    secrets = SecretStore.from_settings(settings)
    lines = []
    for kind, username, password, role, district in _ACCOUNTS:
        new = NewAccount(
            kind=kind,
            username=username,
            password=password,
            role=role,
            district=district,
            merchant_id=merchant_id if kind == "staff" else None,
        )
        try:
            async with conn.transaction():
                await create_account(conn, new, secrets=secrets)
        except AccountExists:
            continue
        where = f" district {district}" if district else (" of the demo merchant" if kind == "staff" else "")
        lines.append(f"{kind} ({role}{where}): username={username} password={password}")
    return lines


async def seed_demo(conn: asyncpg.Connection, redis: aioredis.Redis, settings: Settings) -> str:
    """Seed every part that is missing; the summary of what was written (and its credentials)."""
    if settings.is_production:
        raise RuntimeError("seed-demo writes well-known demo credentials; it does not run in production")
    lines = ["chongjun demo data"]
    catalog = await _seed_catalog(conn, redis, settings)
    lines += catalog if catalog is not None else ["catalog: already present, unchanged"]
    accounts = await _seed_accounts(conn, settings)
    lines += accounts or ["accounts: already present, unchanged"]
    return "\n".join(lines)


async def seed_demo_if_empty(settings: Settings) -> str | None:
    """`serve` in dev: seed an empty database (no benefits yet); None when there was data."""
    from api.lifespan import connect_redis
    from chongjun.runtime import open_connection

    conn = await open_connection(settings)
    redis = connect_redis(settings)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM benefits)"):
            return None
        return await seed_demo(conn, redis, settings)
    finally:
        await redis.aclose()
        await conn.close()
