"""Long-lived resources: the PostgreSQL pool and the Redis client, owned by the app's lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any

from litestar import Litestar

from foundation.connections import connect_postgres, connect_redis, warm_up
from foundation.settings import Settings

__all__ = ("freeze_startup_objects", "in_background", "resources")


@asynccontextmanager
async def resources(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = await connect_postgres(settings)
    app.state.redis = connect_redis(settings)
    await warm_up(app.state.redis)
    try:
        yield
    finally:
        await app.state.redis.aclose()
        await app.state.pool.close()


@asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` while the app serves; at shutdown cancel it and wait until it has ended."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


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
