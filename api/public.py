"""Public operational endpoints: liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Controller, Litestar, Response, get
from litestar.datastructures import State
from litestar.plugins.prometheus import PrometheusController
from prometheus_client import Counter, Gauge

from api.lifespan import in_background
from foundation.replica import ReplicaReads

__all__ = ("HealthController", "MetricsController", "count_fallback", "pool_gauges", "replica_checks")

# "livesum": with several workers (PROMETHEUS_MULTIPROC_DIR set) the gauges add up across them.
_pool_size = Gauge("chongjun_pg_pool_size", "Open PostgreSQL pool connections", multiprocess_mode="livesum")
_pool_idle = Gauge("chongjun_pg_pool_idle", "Idle PostgreSQL pool connections", multiprocess_mode="livesum")
_pool_max = Gauge("chongjun_pg_pool_max", "Maximum PostgreSQL pool connections", multiprocess_mode="livesum")

# Every worker measures the same replica: "livemax" shows the worst figure once.
_replica_lag = Gauge("chongjun_replica_lag_seconds", "At most how far the read replica is behind the primary (as last measured)",
                     multiprocess_mode="livemax")
_replica_usable = Gauge("chongjun_replica_usable", "1 while replica reads are within the staleness bound, else 0",
                        multiprocess_mode="livemin")
_replica_fallbacks = Counter("chongjun_replica_fallbacks", "Replica-eligible reads served by the primary, by why",
                             ["reason"])

POOL_SAMPLE_SECONDS = 1.0
"""How often every worker writes its pool gauges; /metrics shows them at most this old."""

_CHECK_TIMEOUT = 2.0


async def _check_postgres(state: State) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            async with state.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        return "ok"
    except Exception:
        return "down"


async def _check_redis(state: State) -> str:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT):
            await state.redis.ping()
        return "ok"
    except Exception:
        return "down"


def count_fallback(reason: str) -> None:
    """One read that could have gone to the replica went to the primary (`lagging` or `down`)."""
    _replica_fallbacks.labels(reason).inc()


def _sample_replica(reads: ReplicaReads) -> None:
    behind = reads.staleness()
    if behind is not None:
        _replica_lag.set(behind)
    _replica_usable.set(1 if reads.state() == "ok" else 0)


@asynccontextmanager
async def replica_checks(app: Litestar) -> AsyncIterator[None]:
    """With a replica configured, every worker measures its lag every `replica_check_seconds`."""
    reads: ReplicaReads = app.state.reads
    if not reads.configured:
        yield
        return
    try:
        async with in_background(reads.run(after_check=_sample_replica)):
            yield
    finally:
        await reads.close()


class HealthController(Controller):
    tags = ["operations"]

    @get("/health", operation_id="Health", summary="Liveness: the process answers")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="Ready", summary="Readiness: PostgreSQL and Redis answer (and the read replica's state)",
         description="`replica` (only when one is configured): `ok`, `lagging` or `down` as this worker last measured "
         "it. A replica that lags or is down never makes the service unready: its reads go to the primary.")
    async def ready(self, state: State) -> Response[dict[str, str]]:
        postgres, redis = await asyncio.gather(_check_postgres(state), _check_redis(state))
        body = {"status": "ok", "postgres": postgres, "redis": redis}
        if state.reads.configured:
            body["replica"] = state.reads.state()
        down = [name for name in ("postgres", "redis") if body[name] != "ok"]
        if down:
            body["status"] = "unavailable"
            body["down"] = ",".join(down)
            return Response(body, status_code=503)
        return Response(body)


class MetricsController(PrometheusController):
    """Litestar's Prometheus endpoint as it is, at /metrics.

    Request counts by route template and status and the latency histogram come from the
    `api.httpmetrics.RequestMetrics` middleware (`api.app`); the pool gauges from `pool_gauges`. With
    PROMETHEUS_MULTIPROC_DIR set (`chongjun serve --workers N` sets it before any worker starts)
    the controller merges every worker's metric files, so one scrape sees them all.
    """

    include_in_schema = False
    tags = ["operations"]


@asynccontextmanager
async def pool_gauges(app: Litestar) -> AsyncIterator[None]:
    """Every worker writes its own pool's gauges, so a scrape answered by any worker sees all."""

    async def sample() -> None:
        while True:
            pool = app.state.pool
            _pool_size.set(pool.get_size())
            _pool_idle.set(pool.get_idle_size())
            _pool_max.set(pool.get_max_size())
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    async with in_background(sample()):
        yield
