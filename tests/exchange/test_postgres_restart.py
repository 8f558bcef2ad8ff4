"""PostgreSQL crashes and restarts while the relay delivers (issue 13, tests): afterwards the
receiver holds every event exactly once after dedupe by id, in order per stream, and rebuilds the
ledger's accepted-minus-reversed count per venue and day exactly.

The cluster is the test's own (tests/exchange/postgres.py, the embedded server's binaries), so
the crash cuts only this test's connections: the app's pool, the relay's pool and the test's."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

import identity
from api import create_app
from foundation.connections import SERVICE_ROLE, connect_postgres, dsn_with_user
from migrations import apply_migrations
from tests.exchange.postgres import OwnPostgres
from tests.exchange.receiver import Receiver
from tests.exchange.test_relay import make_relay
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_rating_world, reverse, suishen
from tests.support import init_connection


async def _visit(client, app, world, id_number: str, *, xuhui: bool) -> str:
    """One accepted scan; right after the crash the app's first tries may find its pooled
    connections cut (a 5xx, nothing written): a gate scans again with a fresh code."""
    venue_id, headers = (world.xuhui_venue_id, world.xuhui_device_headers) if xuhui else (
        world.pudong.venue_id, world.pudong.device_headers
    )
    async with asyncio.timeout(60):
        while True:
            scanned = await client.post("/v1/scans", json={"code": suishen(app, id_number), "venue_id": venue_id},
                                        headers=headers)
            if scanned.status_code < 500:
                assert scanned.json()["decision"] == "accepted", scanned.text
                return scanned.json()["redemption_id"]
            await asyncio.sleep(0.2)


async def _connect(dsn: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(dsn)
    await init_connection(connection)
    return connection


async def test_postgresql_restart_during_delivery_loses_and_doubles_nothing(settings):
    own = OwnPostgres().start()
    release = asyncio.Event()
    # The 2nd batch is kept but answered only after the crash and restart: the relay's mark of it
    # (and its lease renewals) meet a server that is gone.
    receiver = await Receiver(lambda n: ("hold", release, 200) if n == 2 else 200).start()
    try:
        admin = await asyncpg.connect(own.dsn())
        await admin.execute("CREATE DATABASE cj")
        await admin.close()
        owner = own.dsn("cj")
        conn = await _connect(owner)
        await apply_migrations(conn)
        ours = msgspec.structs.replace(settings, database_url=dsn_with_user(owner, SERVICE_ROLE), database_owner_url=owner)
        ring = identity.KeyRing(identity.SecretStore.from_settings(ours))
        await identity.ensure_signing_keys(conn, ring.secrets, create=True,
                                           alg=identity.profile_algorithm(ours.crypto_profile))
        await ring.load(conn)
        await conn.close()

        app = create_app(ours)
        pool = await connect_postgres(ours, min_size=1, max_size=4)
        async with AsyncTestClient(app=app) as client:
            world = await build_rating_world(client, app)
            before = [await _visit(client, app, world, VETERAN_ID if i % 2 else DISABLED_ID, xuhui=i % 3 == 1)
                      for i in range(8)]
            for redemption_id in (before[0], before[2], before[3]):  # Pudong's (its device reverses)
                await reverse(client, world, redemption_id)

            relay = make_relay(pool, ring, receiver.url, batch_size=4)
            task = asyncio.create_task(relay.run())
            async with asyncio.timeout(60):
                while receiver.requests < 2:  # the 2nd batch is on the wire, held
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(own.crash_restart)
            release.set()
            requests_at_restart = receiver.requests

            after = [await _visit(client, app, world, VETERAN_ID, xuhui=i % 2 == 1) for i in range(5)]
            await reverse(client, world, after[0])
            await reverse(client, world, before[5])

            conn = await _connect(owner)
            outbox = {str(row["id"]) for row in await conn.fetch("SELECT id FROM outbox")}
            try:
                async with asyncio.timeout(90):
                    while set(receiver.deduped()) != outbox:
                        assert not task.done(), task
                        await asyncio.sleep(0.05)
            finally:
                relay.stop()
                await task
            ledger = await conn.fetch(
                "SELECT venue_id::text, service_day::text, sum(CASE WHEN kind = 'redemption' THEN 1 ELSE -1 END) AS net"
                " FROM redemptions GROUP BY 1, 2"
            )
            undelivered = await conn.fetchval("SELECT count(*) FROM exchange_batches WHERE status <> 'delivered'")
            await conn.close()
        await pool.close()
    finally:
        await receiver.stop()
        own.stop()

    assert receiver.requests > requests_at_restart  # delivery went on after the restart
    assert undelivered == 0
    # exactly once after dedupe by id: every outbox event, nothing else, and a copy sent twice
    # (a batch re-sent after the crash) is the same event byte for byte
    copies: dict[str, list[dict]] = {}
    for event in receiver.events():
        copies.setdefault(event["id"], []).append(event)
    assert set(copies) == outbox
    assert all(all(copy == same[0] for copy in same) for same in copies.values())
    receiver.check_order()
    rebuilt: Counter = Counter()
    for event in receiver.deduped().values():
        if event["type"] in ("redemption.accepted", "redemption.reversed"):
            sign = 1 if event["type"] == "redemption.accepted" else -1
            rebuilt[(event["data"]["venue_id"], event["data"]["service_day"])] += sign
    assert {(r["venue_id"], r["service_day"]): r["net"] for r in ledger} == dict(rebuilt)
    assert sum(rebuilt.values()) == 8 + 5 - 5
