"""Real PostgreSQL and Redis for every test: no mocks, no SQLite, no fakeredis.

With DATABASE_URL / REDIS_URL set the tests use those servers; otherwise they start the embedded
ones in `tests.support.embedded_test_dir()` (a RAM filesystem when there is one with room). Each
test gets its own database, cloned from a migrated template, and a flushed Redis database: tests
flush the Redis database they are given (and, with two test processes, the next one), so never
point REDIS_URL at one that matters.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from api import create_app
from foundation.settings import Settings, load_settings
from chongjun.embedded import start_embedded
from migrations import apply_migrations, discover
from foundation.connections import SERVICE_ROLE, RedisClient, connect_redis, dsn_with_user
from tests.cluster.servers import LocalCluster
from tests.support import (
    claim_test_dir,
    dsn_with_database,
    embedded_test_dir,
    init_connection,
    is_stale_test_database,
    new_test_database_name,
    redis_url_with_db,
    suite_process,
    suite_process_index,
    sweep_orphaned_test_dirs,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings pointing at the servers for this test session (configured or embedded).

    `database_owner_url` is the owner's (a superuser: the tests create databases): DATABASE_OWNER_URL,
    else DATABASE_URL, else the embedded server's. `database_url` is the service role's: DATABASE_URL
    when both are set, else the owner's DSN as `chongjun_app` (no password: trust authentication).
    """
    settings = load_settings()
    if not (settings.database_url and settings.redis_url):
        sweep_orphaned_test_dirs()
        claim_test_dir(embedded_test_dir())
        embedded = start_embedded(
            embedded_test_dir(), need_postgres=not settings.database_url, need_redis=not settings.redis_url
        )
        settings = msgspec.structs.replace(
            settings,
            database_url=settings.database_url or embedded.database_url,
            redis_url=settings.redis_url or embedded.redis_url,
        )
    owner = settings.database_owner_url or settings.database_url
    service = settings.database_url if settings.database_owner_url else dsn_with_user(owner, SERVICE_ROLE)
    settings = msgspec.structs.replace(settings, database_url=service, database_owner_url=owner)
    # Test processes of one run (pytest-xdist, `./dev test` runs two) share the servers but not a
    # Redis database (each flushes its own) nor the app's data directory (live servers' metrics).
    return msgspec.structs.replace(
        settings, env="dev", data_dir=ROOT / ".chongjun" / "test" / suite_process(), device_scan_rate=0,
        log_level="WARNING", redis_url=redis_url_with_db(settings.redis_url, suite_process_index()),
    )


@pytest.fixture(scope="session")
async def template_database(base_settings: Settings) -> str:
    """A database migrated once per schema version; each test clones it."""
    digest = msgspec.json.encode([m.checksum for m in discover()])
    import hashlib

    name = "cj_tmpl_" + hashlib.sha256(digest).hexdigest()[:16]
    admin = await asyncpg.connect(base_settings.database_owner_url)
    try:
        # One builder at a time: the test processes of a run all want the same template.
        await admin.execute("SELECT pg_advisory_lock(hashtext('chongjun test template'))")
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            building = name + "_build"
            await admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{building}"')
            conn = await asyncpg.connect(dsn_with_database(base_settings.database_owner_url, building))
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
            # Renamed only when complete, so an interrupted build is never used.
            await admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        # Old templates and databases left by killed runs.
        stale = await admin.fetch(
            "SELECT datname FROM pg_database WHERE (datname LIKE 'cj_tmpl_%' AND datname <> $1)"
            " OR datname LIKE 'cj_test_%'",
            name,
        )
        for row in stale:
            if row["datname"].startswith("cj_test_") and not is_stale_test_database(row["datname"]):
                continue  # another test process of this run (or of a run beside it) uses it
            await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()
    return name


@pytest.fixture
def crypto_profile(request: pytest.FixtureRequest, base_settings: Settings) -> str:
    """The crypto profile of the test's settings: CHONGJUN_CRYPTO_PROFILE's (intl by default), or
    each of them where a test says `@both_profiles` (tests.support), so one run covers both."""
    return getattr(request, "param", base_settings.crypto_profile)


@pytest.fixture(scope="session")
def redis_cluster_server() -> Iterator[LocalCluster]:
    """A real 3-master Redis Cluster on loopback ports (tests/cluster/servers.py), started the first
    time a test asks for it (`tests.support.both_redis`), stopped at the end of the session."""
    LocalCluster.sweep(embedded_test_dir())
    cluster = LocalCluster(embedded_test_dir() / f"redis-cluster-{os.getpid()}").start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_kind(request: pytest.FixtureRequest) -> str:
    """`single` (the configured or embedded server) or `cluster`, where a test says `@both_redis`."""
    return getattr(request, "param", "single")


@pytest.fixture
async def settings(
    request: pytest.FixtureRequest, base_settings: Settings, template_database: str, crypto_profile: str, redis_kind: str
) -> AsyncIterator[Settings]:
    """Settings for one test: a fresh database, an empty Redis (or Redis Cluster), and the test's crypto profile."""
    name = new_test_database_name()
    admin = await asyncpg.connect(base_settings.database_owner_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await admin.close()
    if redis_kind == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster_server")
        cluster.flush()
        base_settings = msgspec.structs.replace(base_settings, redis_url=cluster.url, redis_cluster=True)
    else:
        client = aioredis.Redis.from_url(base_settings.redis_url)
        await client.flushdb()
        await client.aclose()
    yield msgspec.structs.replace(
        base_settings, database_url=dsn_with_database(base_settings.database_url, name),
        database_owner_url=dsn_with_database(base_settings.database_owner_url, name), crypto_profile=crypto_profile,
    )
    admin = await asyncpg.connect(base_settings.database_owner_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def conn(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database as its owner, a superuser (autocommit: what it
    writes, the app sees). The app connects as the service role (`settings.database_url`)."""
    connection = await asyncpg.connect(settings.database_owner_url)
    await init_connection(connection)
    yield connection
    await connection.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[RedisClient]:
    """A client of the test's Redis, made as the app makes one (a cluster client for `cluster`)."""
    client = connect_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
async def client(app) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client
