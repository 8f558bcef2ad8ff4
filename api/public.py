"""Public operational endpoints: liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from litestar import Controller, Response, get
from litestar.datastructures import State
import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge, generate_latest, multiprocess

__all__ = ("HealthController", "MetricsController")

# "livesum": with several workers (PROMETHEUS_MULTIPROC_DIR set) the gauges add up across them.
_pool_size = Gauge("chongjun_pg_pool_size", "Open PostgreSQL pool connections", multiprocess_mode="livesum")
_pool_idle = Gauge("chongjun_pg_pool_idle", "Idle PostgreSQL pool connections", multiprocess_mode="livesum")
_pool_max = Gauge("chongjun_pg_pool_max", "Maximum PostgreSQL pool connections", multiprocess_mode="livesum")

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


class HealthController(Controller):
    tags = ["operations"]

    @get("/health", operation_id="Health", summary="Liveness: the process answers")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", operation_id="Ready", summary="Readiness: PostgreSQL and Redis answer")
    async def ready(self, state: State) -> Response[dict[str, str]]:
        postgres, redis = await asyncio.gather(_check_postgres(state), _check_redis(state))
        body = {"status": "ok", "postgres": postgres, "redis": redis}
        down = [name for name in ("postgres", "redis") if body[name] != "ok"]
        if down:
            body["status"] = "unavailable"
            body["down"] = ",".join(down)
            return Response(body, status_code=503)
        return Response(body)


class MetricsController(Controller):
    tags = ["operations"]

    @get("/metrics", operation_id="Metrics", summary="Prometheus text: requests, latency, pool", include_in_schema=False)
    async def metrics(self, state: State) -> Response[bytes]:
        pool = state.pool
        _pool_size.set(pool.get_size())
        _pool_idle.set(pool.get_idle_size())
        _pool_max.set(pool.get_max_size())
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
