"""`chongjun bench matching`: the latency of 免申即享 matching for one person against 50 benefits.

Runs against the configured (or embedded) PostgreSQL and Redis, in a scratch database that is
dropped afterwards: the catalog the caller seeds (the CLI passes the demo seed: the 41 reference
benefits and their venues) plus 9 copies of C12 (50 active), a person with quota already used.
It times `catalog.my_benefits` — what `GET /v1/me/benefits` runs after authentication and
loading the person — in two cases:

- cold: the person's cached answer was just invalidated (as after a redemption), so the list is
  computed: catalog from the process cache, the person's quota rows from PostgreSQL, 50 rules
  evaluated, the answer written to Redis;
- warm: the cached answer is valid and served from Redis.

Wall-clock percentiles include waiting for PostgreSQL, Redis and the CPU (on a busy machine the
tail is scheduling); the `-cpu` rows are this process's own CPU time per request.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime

import asyncpg
import msgspec
import redis.asyncio as aioredis

from benefits import catalog
from chongjun.bench.scratch import scratch_database
from foundation.connections import connect_redis
from foundation.settings import Settings
from identity import Person

__all__ = ("SeedCatalog", "run_matching_bench")

# Writes a catalog with the reference benefit C12 into the scratch database it is given.
SeedCatalog = Callable[[asyncpg.Connection, aioredis.Redis, Settings], Awaitable[object]]
_BENCH_ACTOR = catalog.Actor("system", "bench-matching")


def _person(categories: set[str], **fields) -> Person:
    """A person as the rules see it (a Xuhui veteran born in 1968 unless `fields` say otherwise)."""
    return Person(**({
        "id": uuid.uuid4(), "name_masked": "王*", "categories": frozenset(categories), "disability_grade": None,
        "disability_cause": None, "card_kind": "VETERAN_CARD", "card_status": "ACTIVE", "card_province": "310000",
        "district": "310104", "birth_date": date(1968, 3, 9),
    } | fields))


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


async def run_matching_bench(
    settings: Settings, *, seed_catalog: SeedCatalog, iterations: int, echo
) -> dict[str, tuple[float, float, float]]:
    """Build the scratch database, time both cases, drop it; returns {case: (p50, p95, p99)} in ms."""
    redis = connect_redis(settings)
    people = [_person({"DEMOBILIZED_SOLDIER"}),
              _person({"VETERAN", "DISABLED_SERVICEMAN"}, disability_grade=2, disability_cause="WAR")]
    try:
        async with scratch_database(settings) as (bench_settings, conn):
            await seed_catalog(conn, redis, bench_settings)
            c12 = await catalog.get_benefit_by_code(conn, "C12")
            venues = [row["venue_id"] for row in await conn.fetch(
                "SELECT venue_id FROM venue_benefits WHERE benefit_id = $1", c12.benefit_id)]
            for i in range(1, 10):
                spec = msgspec.to_builtins(c12.spec()) | {"code": f"X{i}", "status": "active"}
                await catalog.create_benefit(conn, catalog.decode_draft(spec), _BENCH_ACTOR, venue_ids=venues)
            await catalog.catalog_changed(redis)
            active = await catalog.list_active_benefits(conn)
            echo(f"scratch database: {len(active)} active benefits")
            for person in people:
                for version in active[:10]:
                    for cap in version.caps:
                        await conn.execute(
                            "INSERT INTO quota_usage (person_id, benefit_id, period_key, used) VALUES ($1, $2, $3, 1)"
                            " ON CONFLICT DO NOTHING",
                            person.id, version.benefit_id, catalog.period_key(cap.period, datetime.now(catalog.SHANGHAI)),
                        )
            results: dict[str, list[float]] = {"cold": [], "warm": [], "cold-cpu": [], "warm-cpu": []}
            for person in people:  # warm up the process caches (versions, compiled rules)
                await catalog.my_benefits(conn, redis, person, person.id)
            for i in range(iterations):
                person = people[i % len(people)]
                await catalog.forget_person_benefits(redis, person.id)
                started, cpu = time.perf_counter(), time.process_time()
                answer = await catalog.my_benefits(conn, redis, person, person.id)
                results["cold"].append((time.perf_counter() - started) * 1000)
                results["cold-cpu"].append((time.process_time() - cpu) * 1000)
                await catalog.settle_cache_writes()  # the write is not part of the answer's latency
                started, cpu = time.perf_counter(), time.process_time()
                again = await catalog.my_benefits(conn, redis, person, person.id)
                results["warm"].append((time.perf_counter() - started) * 1000)
                results["warm-cpu"].append((time.process_time() - cpu) * 1000)
                assert len(answer.items) == len(again.items) == len(active)
    finally:
        for person in people:
            await redis.delete(catalog.person_cache_key(person.id), catalog.person_cache_key(person.id) + ":gen")
        await redis.aclose()
    return {case: _percentiles(samples) for case, samples in results.items()}

