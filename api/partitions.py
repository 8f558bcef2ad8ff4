"""The ledger's month partitions made ahead by every worker of `serve`: once at start, then daily
(`benefits.redemption.ensure_partitions`; the owner's SECURITY DEFINER function creates them, an
advisory lock makes the workers take turns, and a month that exists is skipped)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from api.lifespan import in_background
from benefits import redemption

__all__ = ("partitions_lifespan",)

log = logging.getLogger("chongjun.partitions")


async def _ensure(app: Litestar) -> None:
    try:
        async with app.state.pool.acquire() as conn:
            result = await redemption.ensure_partitions(conn)
    except Exception as exc:  # keep serving: a month without a partition goes to the DEFAULT one
        log.warning("ledger partitions not ensured: %s", type(exc).__name__)
        return
    if result.created:
        log.info("ledger partitions created: %s", ", ".join(result.created))
    if result.in_default:
        log.warning("ledger months left in the default partition: %s", ", ".join(result.in_default))


async def _daily(app: Litestar) -> None:
    while True:
        await asyncio.sleep(redemption.PARTITIONS_CHECK_SECONDS)
        await _ensure(app)


@asynccontextmanager
async def partitions_lifespan(app: Litestar) -> AsyncIterator[None]:
    await _ensure(app)
    async with in_background(_daily(app)):
        yield
