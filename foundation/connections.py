"""Connections to PostgreSQL and Redis, set up the same way for the app, the CLI and the tests."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import msgspec
import redis.asyncio as aioredis

from foundation.settings import Settings

__all__ = (
    "SERVICE_ROLE", "connect_postgres", "connect_redis", "dsn_with_database", "dsn_with_user", "init_connection",
    "open_connection", "reset_connection",
)


async def init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, encoded by msgspec (fast, and Structs encode directly).
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(), decoder=msgspec.json.decode
        )


async def reset_connection(conn: asyncpg.Connection) -> None:
    """Run when a connection goes back to the pool, instead of asyncpg's reset query.

    The default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is one more round
    trip on every request. Nothing here leaves session state on a pooled connection: no SET
    without LOCAL, no LISTEN, no cursor outside a transaction, only transaction-scoped advisory
    locks (migrations use a connection of their own). What can be left is an open transaction
    after an error, and that is rolled back.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect_postgres(settings: Settings, *, dsn: str | None = None, **overrides) -> asyncpg.Pool:
    """A pool that opens connections lazily, so the app starts (and /ready says why) while PG is down.

    `dsn`: another server than `settings.database_url` (the read replica)."""
    options = {
        "min_size": 0,
        "max_size": settings.pool_max_size,
        "init": init_connection,
        "reset": reset_connection,
        "command_timeout": 30,
        "timeout": 5,
        "max_inactive_connection_lifetime": 300,
    }
    options.update(overrides)
    return await asyncpg.create_pool(dsn or settings.database_url, **options)


def connect_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=256,
    )


SERVICE_ROLE = "chongjun_app"
"""The service's database role (migration 0004): reads and appends history, owns nothing."""


async def open_connection(settings: Settings, *, owner: bool = False) -> asyncpg.Connection:
    """One connection outside the pool (CLI commands; with `owner`, as the schema's owner for
    migrations), with the pool's codecs."""
    conn = await asyncpg.connect(settings.migration_url if owner else settings.database_url, timeout=10)
    await init_connection(conn)
    return conn


def dsn_with_user(dsn: str, user: str) -> str:
    """The same server and database as another role, without a password (trust or peer-less local
    authentication: the embedded server, a test server); give a full DSN for anything else."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.pop("user", None)
    query.pop("password", None)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, urlencode(query), parts.fragment))


def dsn_with_database(dsn: str, database: str) -> str:
    """The same server, another database; keeps query options such as a socket `host`."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.pop("dbname", None)
    query.pop("database", None)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, urlencode(query), parts.fragment))
