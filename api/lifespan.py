"""Long-lived resources: the PostgreSQL pools (primary, and the read replica when configured) and
the Redis client, owned by the app's lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any

from litestar import Litestar

from benefits import redemption
from foundation.connections import connect_postgres, connect_redis, warm_up
from foundation.replica import ReplicaReads
from foundation.settings import Settings

__all__ = ("freeze_startup_objects", "in_background", "resources")



@asynccontextmanager
async def resources(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = await connect_postgres(settings)
    # The replica's connect timeout is short: a request waits at most that long before its read
    # falls back to the primary (api.deps.provide_read_conn).
    replica = await connect_postgres(settings, dsn=settings.database_replica_url, timeout=2) if settings.database_replica_url else None
    app.state.reads = ReplicaReads(
        app.state.pool, replica, primary_dsn=settings.database_url, replica_dsn=settings.database_replica_url,
        max_lag=settings.replica_max_lag_seconds, check_seconds=settings.replica_check_seconds,
    )
    app.state.redis = connect_redis(settings)
    await warm_up(app.state.redis)
    # A worker's concurrent scans share round trips (foundation/batching.py): the Redis gate, the
    # person read and the ledger statement each in batches. The batches' PostgreSQL connections
    # are pools of their own: a scan holds one of the main pool while it waits for its batch, so
    # batches drawing from that pool could wait behind the very scans they serve.
    reads_pool = await connect_postgres(settings, max_size=redemption.BATCHES_IN_FLIGHT)
    ledger_pool = await connect_postgres(settings, max_size=redemption.BATCHES_IN_FLIGHT)
    app.state.scan_batches = redemption.scan_batches(app.state.redis, reads_pool=reads_pool, ledger_pool=ledger_pool)
    try:
        yield
    finally:
        await app.state.redis.aclose()
        await ledger_pool.close()
        await reads_pool.close()
        if replica is not None:
            await replica.close()
        await app.state.pool.close()


@asynccontextmanager
async def in_background(
    work: Coroutine[Any, Any, None], *, stop: Callable[[], None] | None = None, grace_seconds: float = 5.0
) -> AsyncIterator[None]:
    """Run `work` while the app serves; at shutdown end it and wait until it has ended.

    Without `stop` the task is cancelled (what it raised before is raised here). With `stop`, for
    a work that finishes what it is doing when asked (the exchange relay), `stop()` is called, the
    task gets `grace_seconds` to return and is cancelled after that; what it raised is dropped,
    as the work logs its own failures and shutting down must go on.
    """
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        if stop is not None:
            stop()
            await asyncio.wait([task], timeout=grace_seconds)
        task.cancel()
        with suppress(asyncio.CancelledError):
            if stop is None:
                await task
            else:
                await asyncio.gather(task, return_exceptions=True)


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
