"""免申即享 matching: every active benefit for one person, with the reason, quota left and venues.

Two caches, both only ever copies of what PostgreSQL holds:

- In process, the active catalog (versions and their venues), reloaded when the catalog
  generation in Redis (`cj:catalog:gen`, a random token set after every committed catalog
  write) changes, or after 30 s whatever Redis says.
- In Redis, each person's answer under `cj:{p:<person_id>}:benefits` (hash-tagged so it lives
  with the person's other keys on one Redis Cluster slot), msgpack-encoded with the catalog
  generation and a digest of the person it was computed for. It is used only when both still
  match and it is the same Shanghai day; it expires at midnight or after 10 minutes; the
  redemption engine drops it after each redemption or reversal (`forget_person_benefits`).

If Redis is down the answer is computed from PostgreSQL every time: slower, never wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

import identity
import merchants
from foundation.structs import Record
from benefits.catalog import db
from benefits.catalog.errors import BenefitNotFound
from benefits.catalog.evaluation import companions_allowed, evaluate, remaining_quota, window_open, window_text
from benefits.catalog.periods import SHANGHAI, period_bounds, period_key
from benefits.catalog.rules import PersonLike, describe
from benefits.catalog.service import list_active_benefits
from benefits.catalog.types import BenefitSummary, BenefitVersion, MatchedBenefit, MyBenefits
from foundation.cache import LocalCache

__all__ = (
    "CATALOG_GEN_KEY",
    "CatalogEntry",
    "StaleMark",
    "active_catalog",
    "catalog_changed",
    "forget_person_benefits",
    "match_benefits",
    "my_benefits",
    "my_benefits_of",
    "person_cache_key",
    "person_stale_mark",
    "public_benefit",
    "public_catalog",
    "require_public_benefit",
    "settle_cache_writes",
    "used_counts",
)

log = logging.getLogger("chongjun.benefits")

CATALOG_GEN_KEY: Final = "cj:catalog:gen"
_CATALOG_MAX_AGE: Final = 30.0
_PERSON_TTL: Final = 600


def person_cache_key(person_id: UUID) -> str:
    return f"cj:{{p:{person_id}}}:benefits"


def _person_generation_key(person_id: UUID) -> str:
    return f"cj:{{p:{person_id}}}:benefits:gen"


class StaleMark(Record):
    """What makes a person's cached list stale: set `generation_key` to `generation` for
    `generation_ttl` seconds and delete `cache_key`. For callers that fold it into a round trip
    of their own (the scan engine does it in one Redis script after an accepted scan)."""

    generation_key: str
    generation: str
    generation_ttl: int
    cache_key: str


def person_stale_mark(person_id: UUID) -> StaleMark:
    # A fresh random token, not a counter: after the key expires (it outlives every entry
    # tagged with it) no later value can equal an old one.
    return StaleMark(_person_generation_key(person_id), uuid.uuid4().hex, 2 * _PERSON_TTL, person_cache_key(person_id))


async def forget_person_benefits(redis: aioredis.Redis, person_id: UUID) -> None:
    """Make the person's cached list stale: call after their quota or their record changed (committed).

    Bumps a per-person generation as well as deleting the entry, so an answer being computed
    concurrently from the old counts is stored under the old generation and never served.
    """
    try:
        mark = person_stale_mark(person_id)
        async with redis.pipeline(transaction=False) as pipe:
            await pipe.set(mark.generation_key, mark.generation, ex=mark.generation_ttl).delete(mark.cache_key).execute()
    except RedisError:
        log.warning("could not drop the cached benefits of a person; the entry expires by itself")


async def catalog_changed(redis: aioredis.Redis) -> None:
    """Mark every cached list stale: call after a catalog write has committed."""
    _catalogs.forget()
    try:
        await redis.set(CATALOG_GEN_KEY, uuid.uuid4().hex)
    except RedisError:
        log.warning("could not publish a catalog change; caches catch up within %s s", _PERSON_TTL)


class CatalogEntry(Record):
    version: BenefitVersion
    venues: list[merchants.PublicVenue]


_catalogs: LocalCache[str, list[CatalogEntry]] = LocalCache(maxsize=4, ttl=_CATALOG_MAX_AGE)
"""The active catalog by the generation it was read under: a new generation never matches an old
entry, and an entry is read again after 30 s whatever Redis says."""


async def _generation(redis: aioredis.Redis) -> str | None:
    """The catalog generation token; None when Redis does not answer.

    A missing token (first start, or Redis lost its data) is replaced by a fresh random one, so
    nothing cached under an earlier token can ever match again.
    """
    try:
        value = await redis.get(CATALOG_GEN_KEY)
        if value is None:
            await redis.set(CATALOG_GEN_KEY, uuid.uuid4().hex, nx=True)
            value = await redis.get(CATALOG_GEN_KEY)
    except RedisError:
        return None
    return value.decode() if value else None


async def active_catalog(
    conn: asyncpg.Connection, redis: aioredis.Redis, *, generation: str | None = None, cache_seconds: float | None = None,
) -> list[CatalogEntry]:
    """The active benefits with their open venues, cached in process per catalog generation.

    `cache_seconds` caps how long what is read here may be cached (a read replica's connection:
    what is left of its staleness bound; 0: not cached)."""
    if generation is None:
        generation = await _generation(redis)
    if generation is not None and (cached := _catalogs.get(generation)) is not None:
        return cached
    versions = await list_active_benefits(conn)
    links = await db.list_venue_links(conn, [v.benefit_id for v in versions])
    venues = {v.id: v for v in await merchants.list_public_venues(conn, domain=None, district=None)}
    by_benefit: dict[UUID, list[merchants.PublicVenue]] = {}
    for row in links:
        venue = venues.get(row["venue_id"])
        if venue is not None:
            by_benefit.setdefault(row["benefit_id"], []).append(venue)
    entries = [CatalogEntry(v, by_benefit.get(v.benefit_id, [])) for v in versions]
    if generation is not None and cache_seconds is None:  # without Redis no generation says when it went stale
        _catalogs.put(generation, entries)
    elif generation is not None and cache_seconds > 0:
        _catalogs.put(generation, entries, ttl=min(_CATALOG_MAX_AGE, cache_seconds))
    return entries


def _summary(entry: CatalogEntry) -> BenefitSummary:
    v = entry.version
    zh, en = describe(v.rule)
    return BenefitSummary(
        id=v.benefit_id,
        code=v.code,
        version=v.version,
        name_zh=v.name_zh,
        name_en=v.name_en,
        domain=v.domain,
        value=v.value,
        tiers=v.tiers,
        rule=v.rule,
        rule_summary_zh=zh,
        rule_summary_en=en,
        companions=v.companions,
        caps=v.caps,
        windows=v.windows,
        exclusions=list(v.exclusions),
        reservation_required=v.reservation_required,
        proof=list(v.proof),
        legal_basis=v.legal_basis,
        source_url=v.source_url,
        venues=entry.venues,
    )


async def public_catalog(conn: asyncpg.Connection, redis: aioredis.Redis) -> list[BenefitSummary]:
    """The whole active catalog, code order, each with its rule summary and venues."""
    return [_summary(entry) for entry in await active_catalog(conn, redis)]


async def public_benefit(conn: asyncpg.Connection, redis: aioredis.Redis, benefit_id: UUID) -> BenefitSummary | None:
    """One active benefit of the public catalog, or None."""
    for entry in await active_catalog(conn, redis):
        if entry.version.benefit_id == benefit_id:
            return _summary(entry)
    return None


async def require_public_benefit(conn: asyncpg.Connection, redis: aioredis.Redis, benefit_id: UUID) -> BenefitSummary:
    """`public_benefit`, or BenefitNotFound (404) for an unknown or inactive benefit."""
    found = await public_benefit(conn, redis, benefit_id)
    if found is None:
        raise BenefitNotFound(f"no active benefit {benefit_id}")
    return found


# --- one person -----------------------------------------------------------------------------------


def _person_digest(person: PersonLike) -> str:
    facts = (
        sorted(person.categories),
        person.disability_grade,
        person.disability_cause,
        person.card_kind,
        person.card_status,
        person.card_province,
        person.district,
        person.birth_date,
        sorted((tie.relation, tie.member_status, sorted(tie.member_categories)) for tie in person.relations),
    )
    return hashlib.blake2b(msgspec.msgpack.encode(facts), digest_size=16).hexdigest()


async def used_counts(
    conn: asyncpg.Connection, person_id: UUID, versions: Sequence[BenefitVersion], at: datetime
) -> dict[UUID, dict[str, int]]:
    """The person's counted redemptions per benefit in the buckets `at` falls in (`quota_usage`)."""
    keys = sorted({period_key(cap.period, at) for v in versions for cap in v.caps})
    if not keys:
        return {}
    out: dict[UUID, dict[str, int]] = {}
    for row in await db.quota_usage_for_person(conn, person_id, keys):
        out.setdefault(row["benefit_id"], {})[row["period_key"]] = row["used"]
    return out


def match_benefits(
    person: PersonLike,
    person_id: UUID,
    catalog: Sequence[CatalogEntry],
    used: dict[UUID, dict[str, int]],
    at: datetime,
) -> MyBenefits:
    """Every benefit of the catalog for this person: pure, so it is the same wherever it runs."""
    items = []
    for entry in catalog:
        version = entry.version
        decision = evaluate(version, person, at)
        quota = remaining_quota(version, used.get(version.benefit_id, {}), at)
        window = window_open(version, at)
        window_zh, window_en = window_text(version)
        items.append(
            MatchedBenefit(
                id=version.benefit_id,
                code=version.code,
                version=version.version,
                name_zh=version.name_zh,
                name_en=version.name_en,
                domain=version.domain,
                eligible=decision.eligible,
                clause=decision.clause,
                reason_zh=decision.message_zh,
                reason_en=decision.message_en,
                value=decision.value,
                companions_allowed=companions_allowed(version, person, at) if decision.eligible else 0,
                quota=quota,
                remaining=min(q.remaining for q in quota) if quota else None,
                window_open_now=window.open,
                window_zh=window_zh or "不限",
                window_en=window_en or "any time",
                venues=entry.venues,
            )
        )
    return MyBenefits(person_id=person_id, evaluated_at=at, items=items)


class _Cached(Record, array_like=True):
    # array_like: a compact internal cache record, never an API payload.
    generation: str
    person_generation: str
    person: str
    day: str
    answer: MyBenefits


_decoder = msgspec.msgpack.Decoder(_Cached)
_encoder = msgspec.msgpack.Encoder()


async def my_benefits_of(
    conn: asyncpg.Connection, redis: aioredis.Redis, person_id: UUID, *, cache_seconds: float | None = None,
) -> MyBenefits:
    """`GET /v1/me/benefits` for an authenticated veteran: loads the person from identity."""
    person = await identity.get_person(conn, person_id)
    if person is None:
        raise identity.PersonNotFound()
    return await my_benefits(conn, redis, person, person.id, cache_seconds=cache_seconds)


async def my_benefits(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    person: PersonLike,
    person_id: UUID,
    *,
    at: datetime | None = None,
    cache_seconds: float | None = None,
) -> MyBenefits:
    """What `GET /v1/me/benefits` answers for this person, from the Redis cache when still valid.

    `cache_seconds` caps how long a fresh answer is cached (None: until midnight, at most 600 s;
    below 1: not cached). A caller reading a replica passes what is left of its staleness bound:
    an invalidation (a scan's new person generation) may already be in Redis while the change it
    announces is not yet on the replica, and the answer is then cached under the new generation."""
    now = at or datetime.now(SHANGHAI)
    day = period_key("day", now)
    digest = _person_digest(person)
    key = person_cache_key(person_id)
    generation: str | None = None
    person_generation = "0"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(CATALOG_GEN_KEY)
            pipe.get(_person_generation_key(person_id))
            pipe.get(key)
            raw_generation, raw_person_generation, raw_entry = await pipe.execute()
        generation = raw_generation.decode() if raw_generation else await _generation(redis)
        person_generation = raw_person_generation.decode() if raw_person_generation else "0"
    except RedisError:
        raw_entry = None
    if raw_entry is not None and generation is not None:
        try:
            cached = _decoder.decode(raw_entry)
        except (msgspec.DecodeError, msgspec.ValidationError):
            cached = None
        if (
            cached
            and cached.generation == generation
            and cached.person_generation == person_generation
            and cached.person == digest
            and cached.day == day
        ):
            return cached.answer
    catalog = await active_catalog(conn, redis, generation=generation, cache_seconds=cache_seconds)
    used = await used_counts(conn, person_id, [e.version for e in catalog], now)
    answer = match_benefits(person, person_id, catalog, used, now)
    if generation is not None and (cache_seconds is None or cache_seconds >= 1):
        midnight = period_bounds("day", now)[1]
        ttl = max(1, min(_PERSON_TTL, int((midnight - now) / timedelta(seconds=1))))
        if cache_seconds is not None:
            ttl = min(ttl, int(cache_seconds))
        entry = _encoder.encode(_Cached(generation, person_generation, digest, day, answer))
        # Written after the answer is returned: the request does not wait for the cache. A write
        # that lands after an invalidation is harmless, it carries the generations read above.
        task = asyncio.get_running_loop().create_task(_store(redis, key, entry, ttl))
        _pending_writes.add(task)
        task.add_done_callback(_pending_writes.discard)
    return answer


_pending_writes: set[asyncio.Task] = set()


async def settle_cache_writes() -> None:
    """Wait for the cache writes started by `my_benefits` (tests, benchmarks, shutdown)."""
    while _pending_writes:
        await asyncio.gather(*list(_pending_writes), return_exceptions=True)


async def _store(redis: aioredis.Redis, key: str, entry: bytes, ttl: int) -> None:
    try:
        await redis.set(key, entry, ex=ttl)
    except RedisError:
        log.warning("could not cache a person's benefits")
