"""Reads on a streaming replica (issue 16, point 6), against a real one: a primary and a hot
standby made by `pg_basebackup -R`, from the embedded server's binaries (tests/replica/cluster.py).

The staleness bound is 3 s and each worker measures the lag every 0.2 s here. What is shown:
a read route answers the replica's older state while replay is paused and the lag is within the
bound, the primary's once it is beyond; a stopped replica costs no error and is used again once
it is back; scans and every write (and the reads inside them) never reach the replica.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from benefits import catalog
from foundation.connections import SERVICE_ROLE
from foundation.settings import Settings
from migrations import apply_migrations
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_rating_world, login, reverse, visit
from tests.replica.cluster import StreamingPair
from tests.support import live_server
from tests.tokens import admin, auth_headers, staff

BOUND = 3.0
CHECK = 0.2
TEMPLATE = "cj_replica_template"


@pytest.fixture(scope="session")
async def pair() -> AsyncIterator[StreamingPair]:
    """One primary and its standby for the session, with a migrated template database."""
    cluster = StreamingPair()
    try:
        cluster.start()
        admin_conn = await asyncpg.connect(cluster.primary_dsn())
        await admin_conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        await admin_conn.close()
        conn = await asyncpg.connect(cluster.primary_dsn(TEMPLATE))
        try:
            await apply_migrations(conn)  # creates the service role chongjun_app, replicated like the rest
        finally:
            await conn.close()
        yield cluster
    finally:
        cluster.close()


async def _until(check, *, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def _standby(pair: StreamingPair, sql: str, database: str = "postgres"):
    conn = await asyncpg.connect(pair.standby_dsn(database))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _resume(pair: StreamingPair) -> None:
    await _standby(pair, "SELECT pg_wal_replay_resume()")


async def _pause(pair: StreamingPair) -> None:
    await _standby(pair, "SELECT pg_wal_replay_pause()")
    await _until(lambda: _standby(pair, "SELECT pg_get_wal_replay_pause_state() = 'paused'"))


@pytest.fixture
async def replica_settings(pair: StreamingPair, settings: Settings) -> AsyncIterator[Settings]:
    """The test's database on the pair (cloned from the template on the primary, streamed to the
    standby), the app as `chongjun_app` on both; Redis and the rest from the usual `settings`."""
    name = "cj_replica_" + uuid.uuid4().hex[:12]
    admin_conn = await asyncpg.connect(pair.primary_dsn())
    await admin_conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')

    async def on_standby() -> bool:
        try:
            return bool(await _standby(pair, "SELECT 1", name))
        except asyncpg.InvalidCatalogNameError:
            return False

    await _until(on_standby)
    yield msgspec.structs.replace(
        settings,
        database_url=pair.primary_dsn(name, SERVICE_ROLE),
        database_owner_url=pair.primary_dsn(name),
        database_replica_url=pair.standby_dsn(name, SERVICE_ROLE),
        replica_max_lag_seconds=BOUND,
        replica_check_seconds=CHECK,
        exchange_relay="off",  # no lease renewals: the primary can be idle (the last test)
        quality_interval_seconds=0,
    )
    try:
        await _resume(pair)
    except (OSError, asyncpg.PostgresError):
        pair.start_standby()  # a test that failed with its standby stopped
    await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin_conn.close()


@pytest.fixture
async def served(replica_settings: Settings):
    app = create_app(replica_settings)
    async with AsyncTestClient(app=app) as client:
        yield app, client


async def _fresh(app) -> bool:
    return app.state.reads.state() == "ok"


async def _lagging(app) -> bool:
    return app.state.reads.state() == "lagging"


def _fallbacks(metrics: str, reason: str) -> float:
    found = re.search(rf'^chongjun_replica_fallbacks_total{{reason="{reason}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


async def _history(client, headers) -> list[str]:
    answer = await client.get("/v1/me/redemptions", headers=headers)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def _merchant_ids(client, headers) -> list[str]:
    answer = await client.get("/v1/merchant/redemptions", headers=headers)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def test_reads_come_from_the_replica_within_the_bound_then_from_the_primary(served, pair, redis, caplog):
    app, client = served
    world = await build_rating_world(client, app)
    veteran = await login(client, app, VETERAN_ID)
    merchant = auth_headers(app, staff(uuid.UUID(world.pudong.merchant_id)))
    first = await visit(client, app, world, VETERAN_ID)
    await _until(lambda: _fresh(app))

    async def replayed() -> bool:
        return await _history(client, veteran) == [first]

    await _until(replayed)
    matched = await client.get("/v1/me/benefits", headers=veteran)  # read on the replica: cached briefly
    assert matched.status_code == 200, matched.text

    async def cache_entries() -> list[bytes]:  # written after the answer, by a task of the app's loop
        return [key async for key in redis.scan_iter(match="cj:{p:*}:benefits")]

    cached = await _until(cache_entries)
    assert len(cached) == 1 and 0 < await redis.ttl(cached[0]) <= BOUND  # not the primary's 600 s

    await _pause(pair)
    second = await visit(client, app, world, VETERAN_ID)  # a scan: on the primary, replay paused
    assert app.state.reads.state() == "ok"  # within the bound: the replica's older state
    assert await _history(client, veteran) == [first]
    assert await _merchant_ids(client, merchant) == [first]
    before = _fallbacks((await client.get("/metrics")).text, "lagging")

    await _until(lambda: _lagging(app), timeout=BOUND * 3)
    assert await _history(client, veteran) == [second, first]  # beyond it: the primary's
    assert await _merchant_ids(client, merchant) == [second, first]
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["replica"] == "lagging", ready.text
    metrics = (await client.get("/metrics")).text
    assert _fallbacks(metrics, "lagging") == before + 2
    lag = float(re.search(r"^chongjun_replica_lag_seconds (\S+)$", metrics, re.M).group(1))
    assert lag > BOUND - 2 * CHECK  # sampled at the last check, at most one interval ago
    assert _warnings(caplog, "replica lags beyond") == 1

    await _resume(pair)
    await _until(lambda: _fresh(app))
    assert await _history(client, veteran) == [second, first]
    assert _fallbacks((await client.get("/metrics")).text, "lagging") == before + 2  # the replica's again


def _warnings(caplog, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "chongjun.replica" and r.levelname == "WARNING" and text in r.getMessage())


async def test_a_stopped_replica_costs_no_error_and_is_used_again(served, pair, caplog):
    app, client = served
    caplog.set_level(logging.INFO, logger="chongjun.replica")
    world = await build_rating_world(client, app)
    veteran = await login(client, app, VETERAN_ID)
    merchant = auth_headers(app, staff(uuid.UUID(world.pudong.merchant_id)))
    city = auth_headers(app, admin("city"))
    first = await visit(client, app, world, VETERAN_ID)
    await _until(lambda: _fresh(app))
    assert await _history(client, veteran) == [first]  # pooled replica connections now exist

    pair.stop_standby()
    started = time.monotonic()
    assert await _history(client, veteran) == [first]  # the first read after the crash too
    assert await _merchant_ids(client, merchant) == [first]
    day = datetime.now(catalog.SHANGHAI).date().isoformat()
    for path, headers in (
        ("/v1/me/benefits", veteran), (f"/v1/me/redemptions/{first}", veteran),
        (f"/v1/merchant/reports/daily?date={day}", merchant), ("/v1/admin/stats", city),
    ):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 200, (path, answer.text)
    csv = await client.get("/v1/merchant/redemptions", headers={**merchant, "Accept": "text/csv"})
    assert csv.status_code == 200 and first in csv.text
    assert time.monotonic() - started < 5  # no read waited for a timeout
    assert app.state.reads.state() == "down"
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok", "replica": "down"}
    assert _fallbacks((await client.get("/metrics")).text, "down") >= 6
    await asyncio.sleep(CHECK * 3)  # more failed checks: still one warning, not one per read or check
    assert _warnings(caplog, "replica unreachable") == 1

    pair.start_standby()
    await _until(lambda: _fresh(app))
    mark = pair.standby_log_size()
    assert await _history(client, veteran) == [first]
    ran_there = [line for line in pair.standby_statements(mark) if "redemptions" in line]
    assert ran_there, "the history read did not reach the replica once it was back"
    assert [r.getMessage() for r in caplog.records if r.name == "chongjun.replica"][-1].startswith("replica reads in use")


async def test_scans_and_writes_never_reach_the_replica(served, pair):
    app, client = served
    world = await build_rating_world(client, app)
    await _until(lambda: _fresh(app))
    await _pause(pair)  # a read of the replica inside any of these would miss what they just wrote
    mark = pair.standby_log_size()
    veteran = await login(client, app, VETERAN_ID)
    visited = await visit(client, app, world, VETERAN_ID)
    rated = await client.post(f"/v1/me/redemptions/{visited}/rating", json={"stars": 5}, headers=veteran)
    assert rated.status_code == 201, rated.text  # found the redemption the scan had just written
    await reverse(client, world, await visit(client, app, world, DISABLED_ID))
    code = await client.post("/v1/me/codes", json={}, headers=veteran)
    assert code.status_code in (200, 201), code.text
    scanned = await client.post("/v1/scans", json={"code": code.json()["code"], "venue_id": world.pudong.venue_id},
                                headers={**world.pudong.device_headers, "Idempotency-Key": str(uuid.uuid4())})
    assert scanned.status_code == 200 and scanned.json()["decision"] == "accepted", scanned.text
    await asyncio.sleep(CHECK * 2)  # a few lag checks too
    statements = [line for line in pair.standby_statements(mark) if line.startswith(SERVICE_ROLE + "@")]
    assert statements, "the lag checks should show in the standby's log"
    assert all("pg_last_wal_replay_lsn" in line for line in statements), statements


async def test_an_idle_primary_does_not_make_a_caught_up_replica_look_stale(served, pair, replica_settings):
    """No commit on the primary for longer than the bound: the replica's last replayed commit is
    old, yet it holds everything, and its reads stay there (WAL positions, not replay time)."""
    app, client = served
    await _until(lambda: _fresh(app))
    database = replica_settings.database_url.rpartition("/")[2]

    async def replay_is_old() -> bool:
        age = "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp()) > $1"
        conn = await asyncpg.connect(pair.standby_dsn(database))
        try:
            return await conn.fetchval(age, BOUND)
        finally:
            await conn.close()

    await _until(replay_is_old, timeout=30, step=0.2)
    assert app.state.reads.state() == "ok"
    mark = pair.standby_log_size()
    answer = await client.get("/v1/admin/stats", headers=auth_headers(app, admin("city")))
    assert answer.status_code == 200, answer.text
    assert any("stats_refreshed" in line for line in pair.standby_statements(mark))


async def test_serve_with_two_workers_reads_the_replica_setting_and_reports_it(pair, replica_settings):
    """`chongjun serve --workers 2` takes DATABASE_REPLICA_URL from the environment: `/ready`
    says the replica is used and the pooled /metrics of both workers carry its figures."""
    extra = {
        "DATABASE_REPLICA_URL": replica_settings.database_replica_url,
        "CHONGJUN_REPLICA_MAX_LAG_SECONDS": str(BOUND), "CHONGJUN_REPLICA_CHECK_SECONDS": str(CHECK),
        "CHONGJUN_EXCHANGE_RELAY": "off",
    }
    with live_server(replica_settings, workers=2, extra_env=extra) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            async def used() -> dict | None:
                ready = await http.get("/ready")
                return ready.json() if ready.status_code == 200 and ready.json().get("replica") == "ok" else None

            assert await _until(used) == {"status": "ok", "postgres": "ok", "redis": "ok", "replica": "ok"}

            # `/ready` came from one worker; the pooled gauge is the smallest of both workers' own
            # measures, so it reads 1 once the other worker has measured too (each every CHECK s).
            async def pooled() -> str | None:
                text = (await http.get("/metrics")).text
                return text if re.search(r"^chongjun_replica_usable 1\.0$", text, re.M) else None

            metrics = await _until(pooled)
    assert 0 <= float(re.search(r"^chongjun_replica_lag_seconds (\S+)$", metrics, re.M).group(1)) < BOUND
