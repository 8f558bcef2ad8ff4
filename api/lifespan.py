"""Long-lived resources: the PostgreSQL pool and the Redis client, owned by the app's lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec
import redis.asyncio as aioredis
from litestar import Litestar

from chongjun.config import Settings

__all__ = ("connect_postgres", "connect_redis", "freeze_startup_objects", "resources")


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as Python objects, encoded by msgspec (fast, and Structs encode directly).
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=lambda v: msgspec.json.encode(v).decode(), decoder=msgspec.json.decode
        )


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Run when a connection goes back to the pool, instead of asyncpg's reset query.

    The default (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) is one more round
    trip on every request. Nothing here leaves session state on a pooled connection: no SET
    without LOCAL, no LISTEN, no cursor outside a transaction, only transaction-scoped advisory
    locks (migrations use a connection of their own). What can be left is an open transaction
    after an error, and that is rolled back.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def connect_postgres(settings: Settings, **overrides) -> asyncpg.Pool:
    """A pool that opens connections lazily, so the app starts (and /ready says why) while PG is down."""
    options = {
        "min_size": 0,
        "max_size": settings.pool_max_size,
        "init": _init_connection,
        "reset": _reset_connection,
        "command_timeout": 30,
        "timeout": 5,
        "max_inactive_connection_lifetime": 300,
    }
    options.update(overrides)
    return await asyncpg.create_pool(settings.database_url, **options)


def connect_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
        max_connections=256,
    )


@asynccontextmanager
async def resources(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = await connect_postgres(settings)
    app.state.redis = connect_redis(settings)
    try:
        yield
    finally:
        await app.state.redis.aclose()
        await app.state.pool.close()


@asynccontextmanager
async def freeze_startup_objects(app: Litestar) -> AsyncIterator[None]:
    """Last of the lifespans: hide everything allocated at start-up from the garbage collector.

    A worker holds a few hundred thousand long-lived objects (modules, the app and its routes,
    schemas, key rings). Measured under the scan benchmark, every full collection walked them all
    and paused the worker for 50-100 ms, which was the whole p99. Frozen, a full collection only
    walks what requests allocated since.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
