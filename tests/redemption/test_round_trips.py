"""PostgreSQL round trips of the scan hot path, counted on the connection (asyncpg's query
logger sees every statement the engine sends): at most 2 for an accepted scan at a venue whose
venue and benefit list are cached, with and without a capacity, for a 随申码 and a 崇军码."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import msgspec

import identity
from benefits import redemption
from benefits.redemption import ScanRequest
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import DAILY, build_world, suishen


def _device(world) -> identity.Principal:
    return identity.Principal(
        kind="device", subject=UUID(world.device_id), merchant_id=UUID(world.merchant_id),
        venue_id=UUID(world.venue_id), secret_generation=1,
    )


async def _counted_scan(app, conn, redis, world, code) -> tuple[dict, list[str]]:
    statements: list[str] = []

    def log(record) -> None:
        statements.append(record.query)

    conn.add_query_logger(log)
    try:
        answer = await redemption.scan(
            conn, redis, _device(world), ScanRequest(code=code, venue_id=UUID(world.venue_id)),
            idempotency_key=str(uuid4()), scan_rate=120, keyring=app.state.keyring, providers=app.state.city,
        )
    finally:
        for _ in range(3):
            await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not during, the query
        conn.remove_query_logger(log)
    return msgspec.json.decode(answer), statements


async def test_an_accepted_scan_at_a_cached_venue_takes_two_round_trips(app, client, conn, redis):
    for capacity in (None, 500):
        world = await build_world(client, app, capacity=capacity, benefit={**DAILY, "code": f"RT{capacity or 0}", "caps": []})
        first, _ = await _counted_scan(app, conn, redis, world, suishen(app, VETERAN_ID))  # fills the caches
        assert first["decision"] == "accepted", first
        answer, statements = await _counted_scan(app, conn, redis, world, suishen(app, DISABLED_ID))
        assert answer["decision"] == "accepted", answer
        assert len(statements) == 2, (capacity, statements)  # the person, the ledger statement
        assert any("record_redemption" in s for s in statements)
