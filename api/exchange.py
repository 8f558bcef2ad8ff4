"""数据汇聚 over HTTP and in the worker: the relay inside `serve`, its gauges in /metrics, the dead
letters for admins. The rules are `exchange`'s."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from uuid import UUID

from litestar import Controller, Litestar, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK
from prometheus_client import Gauge

import exchange
from api.deps import Conn, CurrentPrincipal
from api.guards import requires_admin, requires_admin_role
from api.lifespan import in_background
from api.paging import Page, Paging
from exchange import DeadLetter, ExchangeFigures, QualityWarning
from foundation.settings import Settings

__all__ = ("AdminExchangeController", "AdminQualityController", "exchange_lifespan", "run_checks_safely")

log = logging.getLogger("chongjun.exchange")

# Every worker samples the same database figures, so "max" across workers is the figure.
_GAUGES = {
    "lag_seconds": Gauge("chongjun_exchange_lag_seconds", "Age of the oldest event the sink has not accepted", multiprocess_mode="max"),
    "backlog": Gauge("chongjun_exchange_backlog_events", "Events the sink has not accepted yet", multiprocess_mode="max"),
    "delivered": Gauge("chongjun_exchange_delivered_events", "Events the sink accepted (running total)", multiprocess_mode="max"),
    "retried": Gauge("chongjun_exchange_retried_attempts", "Failed deliveries that were retried (running total)", multiprocess_mode="max"),
    "dead_lettered": Gauge("chongjun_exchange_dead_lettered_events", "Events in dead-lettered batches now", multiprocess_mode="max"),
}
SAMPLE_SECONDS = 5.0

_QUALITY = Gauge("chongjun_quality_warning", "Count behind each active data-quality warning (0 when clear)",
                 ["code"], multiprocess_mode="max")


async def run_checks_safely(conn, settings: Settings, *, unless_ran_within: float | None = None) -> None:
    """The data-quality checks on this connection; a failing check is logged, never an error answer."""
    try:
        await exchange.run_quality_checks(
            conn, lag_warning_seconds=settings.exchange_lag_warning_seconds, unless_ran_within=unless_ran_within
        )
    except asyncpg.PostgresError as exc:
        log.warning("data-quality checks failed: %s", type(exc).__name__)


class AdminExchangeController(Controller):
    """City admins and auditors read; only city admins re-send (the service checks both)."""

    path = "/v1/admin/exchange"
    tags = ["admin"]
    guards = [requires_admin_role("city", "auditor")]

    @get("/status", operation_id="AdminExchangeStatus", summary="The relay: lag, backlog, delivered, retried, dead-lettered")
    async def status(self, conn: Conn, principal: CurrentPrincipal) -> ExchangeFigures:
        return await exchange.exchange_figures(conn)

    @get("/dead-letters", operation_id="AdminListDeadLetters", summary="Batches the data center refused as invalid, latest first (paged)")
    async def dead_letters(self, conn: Conn, principal: CurrentPrincipal, paging: Paging) -> Page[DeadLetter]:
        return await exchange.list_dead_letters(conn, principal, limit=paging.limit, cursor=paging.cursor)

    @post(
        "/dead-letters/{batch_id:uuid}/resend", operation_id="AdminResendDeadLetter", status_code=HTTP_200_OK,
        guards=[requires_admin_role("city")],
        summary="Queue a dead-lettered batch again: the same bytes and event ids, sent before newer batches",
    )
    async def resend(self, batch_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal) -> DeadLetter:
        return await exchange.resend_dead_letter(conn, principal, batch_id)


class AdminQualityController(Controller):
    """第二十条: the platform's warnings about its own data. Every admin role; district admins see
    their district's warnings only (city-wide ones, such as a roster row without district, are the
    city's)."""

    path = "/v1/admin/quality"
    tags = ["admin"]
    guards = [requires_admin]

    @get("", operation_id="AdminListQualityWarnings", summary="Active data-quality warnings: code, severity, count, masked samples, first/last seen")
    async def warnings(self, conn: Conn, principal: CurrentPrincipal) -> list[QualityWarning]:
        return await exchange.list_quality_warnings(conn, principal)


@asynccontextmanager
async def exchange_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Every worker: the exchange gauges, and (CHONGJUN_EXCHANGE_RELAY=serve, a sink configured)
    a relay that delivers while it holds the one lease."""
    settings: Settings = app.state.settings
    relay = None
    if settings.exchange_relay == "serve":
        relay = exchange.build_relay(settings, app.state.pool, app.state.keyring)

    async def sample() -> None:
        seen: set[str] = set()
        while True:
            try:
                async with app.state.pool.acquire() as conn:
                    figures = await exchange.exchange_figures(conn)
                    counts = await exchange.quality_counts(conn)
                for name, gauge in _GAUGES.items():
                    gauge.set(getattr(figures, name))
                for code in seen | set(counts):
                    _QUALITY.labels(code=code).set(counts.get(code, 0))
                seen |= set(counts)
            except Exception as exc:  # noqa: BLE001 - the sampler must outlive a database outage
                log.warning("exchange gauges: %s", type(exc).__name__)
            await asyncio.sleep(SAMPLE_SECONDS)

    async def monitor() -> None:
        while settings.quality_interval_seconds > 0:
            await asyncio.sleep(settings.quality_interval_seconds)
            try:
                async with app.state.pool.acquire() as conn:
                    # Once per interval for all workers (their timers drift apart): a
                    # worker skips when any ran within nine tenths of it.
                    await run_checks_safely(conn, settings, unless_ran_within=0.9 * settings.quality_interval_seconds)
            except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL down: try again next time
                log.warning("data-quality monitor: %s", type(exc).__name__)

    async with AsyncExitStack() as background:
        await background.enter_async_context(in_background(sample()))
        await background.enter_async_context(in_background(monitor()))
        if relay is not None:
            # Asked to stop, the relay finishes the batch it is sending (5 s at most).
            await background.enter_async_context(in_background(relay.run(), stop=relay.stop))
        yield
