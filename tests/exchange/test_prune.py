"""Pruning the outbox (issue 13 §5): delivered events past the retention go, in batches; an event
the data center has not accepted (dead-lettered, pending, or not yet in a batch) never does, even
when it is older than the retention and delivered events come after it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import exchange
from foundation.outbox import write_event
from tests.exchange.receiver import Receiver
from tests.exchange.test_relay import drain, make_relay
from tests.tokens import admin


async def _ids(conn, sql: str = "SELECT id::text FROM outbox") -> set[str]:
    return {row[0] for row in await conn.fetch(sql)}


async def test_pruning_never_removes_an_undelivered_event(conn, pool, keyring):
    release = asyncio.Event()
    # batch 1 accepted, batch 2 refused as invalid (dead letter), batch 3 accepted, batch 4 held
    # until the relay gives up on it (pending when the relay stops)
    answers = {1: 200, 2: 422, 3: 200, 4: ("hold", release, 200)}
    receiver = await Receiver(lambda n: answers.get(n, 200)).start()
    try:
        for i in range(40):
            await write_event(conn, "roster.imported", {"i": i, "lines": 1})
        relay = make_relay(pool, keyring, receiver.url, batch_size=10, timeout=1.0)
        task = asyncio.create_task(relay.run())
        async with asyncio.timeout(30):
            while receiver.requests < 4:
                await asyncio.sleep(0.02)
        relay.stop()
        await task
        release.set()
        for i in range(40, 50):  # never put into a batch
            await write_event(conn, "roster.imported", {"i": i, "lines": 1})
        states = {row["seq"]: row["status"] for row in await conn.fetch("SELECT seq, status FROM exchange_batches")}
        assert states == {1: "delivered", 2: "dead", 3: "delivered", 4: "pending"}

        # Everything is past the 30-day retention except the second half of batch 1.
        delivered_first = [e["id"] for e in receiver.accepted[0]["events"]]
        await conn.execute("UPDATE outbox SET at = at - interval '40 days' WHERE NOT id::text = ANY($1::text[])",
                           delivered_first[5:])
        await conn.execute("UPDATE exchange_batches SET delivered_at = delivered_at - interval '40 days'")
        before = await _ids(conn)
        events, batches = await exchange.prune_events(conn, older_than=timedelta(days=30), batch=2)
        after = await _ids(conn)
        # only the old half of batch 1: batch 3 was delivered too, but it comes after the dead
        # batch 2, and nothing from the oldest undelivered batch on is ever removed
        assert before - after == set(delivered_first[:5]) and events == 5
        assert batches == 2  # the delivered batches' rows (1 and 3); their bodies are no longer needed
        accepted = {e["id"] for batch in receiver.accepted for e in batch["events"]}
        assert before - after <= accepted

        # The dead letter re-sent and everything after it delivered: nothing was missing.
        await exchange.resend_dead_letter(conn, admin("city"), (await conn.fetchval(
            "SELECT batch_id FROM exchange_batches WHERE status = 'dead'")))
        total_ever = len(before) + 1  # + the audit entry of the re-send (stream audit)
        await drain(make_relay(pool, keyring, receiver.url, batch_size=10), receiver, total_ever)
    finally:
        release.set()
        await receiver.stop()
    # the re-sent dead letter arrived after newer batches: its events kept their seq, so after
    # dedupe each stream's seqs are 1…n without a gap or a double (docs/exchange.md)
    for stream in ("roster", "audit"):
        seqs = sorted(e["seq"] for e in receiver.deduped().values() if e["stream"] == stream)
        assert seqs == list(range(1, len(seqs) + 1))
    assert sorted(e["data"]["i"] for e in receiver.deduped().values() if e["type"] == "roster.imported") == list(range(50))
    assert await conn.fetchval("SELECT count(*) FROM exchange_batches WHERE status <> 'delivered'") == 0

    # Now all delivered: a second prune takes every old event, still not the recent ones.
    await conn.execute("UPDATE outbox SET at = now() - interval '40 days' WHERE NOT id::text = ANY($1::text[])",
                       delivered_first[5:])
    events, _ = await exchange.prune_events(conn, older_than=timedelta(days=30), batch=7)
    assert await _ids(conn) == set(delivered_first[5:]) and events == total_ever - 5 - 5
