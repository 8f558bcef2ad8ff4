"""The outbox and the relay against real PostgreSQL and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import msgspec
import pytest

import exchange
import identity
from exchange import FileSink, HttpSink, Pseudonyms, Relay, verify_batch
from exchange.relay import _LostLease
from exchange.seal import KeyRingSigner
from foundation.outbox import write_event
from tests.exchange.receiver import Receiver
from tests.factories.people import VETERAN_ID
from tests.factories.world import build_world, suishen
from tests.support import both_profiles, init_connection


def make_relay(pool, keyring, url, **options) -> Relay:
    options = {"backoff_base": 0.01, "backoff_max": 0.05, "poll_seconds": 0.02, "lease_ttl": 3.0, **options}
    return Relay(pool, HttpSink(url, timeout=options.pop("timeout", 2.0)), KeyRingSigner(keyring),
                 Pseudonyms(b"k" * 32), **options)


async def drain(relay: Relay, receiver: Receiver, expected: int, *, timeout: float = 60.0) -> None:
    """Run the relay until the receiver holds `expected` distinct events."""
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(timeout):
            while len(receiver.deduped()) < expected:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await task


async def test_commit_order_is_not_insert_order_and_nothing_is_lost(settings, conn, pool, keyring, receiver):
    """Writers hold their transactions open for random times, so positions commit out of order,
    while the relay drains concurrently. A cursor on `position` alone would skip late commits;
    the (tx, position) cursor below xmin never does."""
    writers, per_writer = 12, 15
    relay = make_relay(pool, keyring, receiver.url, batch_size=7)
    relay_task = asyncio.create_task(relay.run())

    async def writer(n: int) -> None:
        own = await asyncpg.connect(settings.database_url)
        await init_connection(own)
        try:
            for i in range(per_writer):
                async with own.transaction():
                    await write_event(own, "roster.imported", {"writer": n, "i": i, "lines": 1})
                    await asyncio.sleep(random.uniform(0, 0.03))
                    if i % 5 == 4:  # a rolled-back event must never be delivered
                        await write_event(own, "roster.imported", {"writer": n, "i": -1, "lines": 0})
                        raise_and_rollback = own.transaction()
                        await raise_and_rollback.start()
                        await write_event(own, "roster.imported", {"writer": n, "i": -2, "lines": 0})
                        await raise_and_rollback.rollback()
        finally:
            await own.close()

    await asyncio.gather(*(writer(n) for n in range(writers)))
    committed = await conn.fetchval("SELECT count(*) FROM outbox")
    try:
        async with asyncio.timeout(60):
            while len(receiver.deduped()) < committed:
                await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await relay_task
    events = receiver.deduped()
    assert len(events) == committed == writers * (per_writer + per_writer // 5)
    assert not [e for e in events.values() if e["data"]["i"] == -2]  # the savepoint rolled back
    receiver.check_order()
    for n in range(writers):  # each writer's events in its own commit order
        mine = [e["data"]["i"] for e in events.values() if e["data"]["writer"] == n and e["data"]["i"] >= 0]
        assert mine == list(range(per_writer))
    # the per-stream numbers are the relay's, contiguous, and match what it recorded
    assert await conn.fetchval("SELECT last_seq FROM exchange_streams WHERE stream = 'roster'") == committed


@both_profiles
async def test_scan_to_receiver_sealed_pseudonymous(app, client, conn, pool, keyring, receiver):
    world = await build_world(client, app)
    accepted = (await client.post("/v1/scans", json={"code": suishen(app, VETERAN_ID), "venue_id": world.venue_id},
                                  headers=world.device_headers)).json()
    assert accepted["decision"] == "accepted"
    refused = (await client.post("/v1/scans", json={"code": "CJ1:garbage", "venue_id": world.venue_id},
                                 headers=world.device_headers)).json()
    assert refused["reason"] == "invalid_code"
    ledger = await conn.fetchrow("SELECT * FROM outbox WHERE type = 'redemption.accepted'")
    assert ledger["payload"]["redemption_id"] == accepted["redemption_id"]
    assert ledger["subject"] == await conn.fetchval("SELECT person_id FROM redemptions")
    total = await conn.fetchval("SELECT count(*) FROM outbox")
    await drain(make_relay(pool, keyring, receiver.url), receiver, total)

    by_type = {e["type"]: e for e in receiver.deduped().values()}
    event = by_type["redemption.accepted"]
    assert event["data"]["redemption_id"] == accepted["redemption_id"] and event["stream"] == "ledger"
    assert event["person"].startswith("p1.") and str(ledger["subject"]) not in str(receiver.raw)
    assert by_type["scan.refused"]["data"]["reason"] == "invalid_code" and by_type["scan.refused"]["person"] is None
    text = b"".join(body for body, _ in receiver.raw).decode()
    for secret in (VETERAN_ID, "张"):
        assert secret not in text
    # every batch's detached seal verifies against the published JWKS; a changed byte does not
    jwks = (await client.get("/.well-known/jwks.json")).json()
    for body, headers in receiver.raw:
        header = msgspec.json.decode(__import__("base64").urlsafe_b64decode(headers["x-chongjun-seal"].split(".")[0] + "=="))
        assert header["alg"] == identity.profile_algorithm(app.state.settings.crypto_profile)  # SM2 under gm
        assert verify_batch(body, headers["x-chongjun-seal"], jwks)
        assert not verify_batch(body.replace(b'"ledger"', b'"ledgeR"'), headers["x-chongjun-seal"], jwks)
    # the chain: each batch names the digest of the one before
    import hashlib

    bodies = [body for body, _ in receiver.raw]
    for before, after in zip(bodies, bodies[1:]):
        assert msgspec.json.decode(after)["previous"] == hashlib.sha256(before).hexdigest()


async def test_faulty_receiver_gets_everything_once_after_dedupe(conn, pool, keyring):
    """Fails every other request, times out, answers slowly after keeping the batch, and closes
    connections: afterwards every event is there once after dedupe, in order per stream."""

    def behaviour(n: int):
        if n % 2 == 0:
            return 503
        if n % 7 == 0:
            return ("sleep", 3.0, 200)  # kept, but the relay (timeout 1 s) sends it again
        if n % 5 == 0:
            return "drop"
        if n % 11 == 0:
            return 429
        return 200

    receiver = await Receiver(behaviour).start()
    try:
        for i in range(300):
            await write_event(conn, "venue.changed" if i % 3 else "merchant.changed",
                              {"action": "test", "id": str(uuid.uuid4()), "district": "310115", "fields": []})
        relay = make_relay(pool, keyring, receiver.url, batch_size=20, timeout=1.0)
        await drain(relay, receiver, 300)
    finally:
        await receiver.stop()
    assert len(receiver.events()) > 300  # duplicates happened
    receiver.check_order()
    figures = await exchange.exchange_figures(conn)
    assert figures.delivered == 300 and figures.retried > 0 and figures.backlog == 0


async def test_receiver_down_for_a_while_then_back(conn, pool, keyring):
    receiver = Receiver()
    await receiver.start()
    port = receiver.port
    await receiver.stop()  # down: connections refused
    for i in range(50):
        await write_event(conn, "roster.imported", {"i": i, "lines": 1})
    relay = make_relay(pool, keyring, f"http://127.0.0.1:{port}/ingest", batch_size=10)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(1.0)
    assert (await exchange.exchange_figures(conn)).retried > 0
    await receiver.start(port)
    try:
        async with asyncio.timeout(30):
            while len(receiver.deduped()) < 50:
                await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await task
        await receiver.stop()
    receiver.check_order()
    assert [e["data"]["i"] for e in receiver.deduped().values()] == list(range(50))


async def test_invalid_batch_is_dead_lettered_and_resent(app, client, conn, pool, keyring):
    from tests.tokens import admin, auth_headers

    refuse = {"on": True}
    receiver = await Receiver(lambda n: 422 if refuse["on"] else 200).start()
    try:
        for i in range(5):
            await write_event(conn, "roster.imported", {"i": i, "lines": 1})
        relay = make_relay(pool, keyring, receiver.url, batch_size=5)
        task = asyncio.create_task(relay.run())
        async with asyncio.timeout(20):
            while (await exchange.exchange_figures(conn)).dead_lettered < 5:
                await asyncio.sleep(0.05)
        # the relay goes on with the next batch: a dead letter does not block the stream
        await write_event(conn, "roster.imported", {"i": 5, "lines": 1})
        refuse["on"] = False
        async with asyncio.timeout(20):
            while len(receiver.deduped()) < 1:
                await asyncio.sleep(0.05)
        city = auth_headers(app, admin("city"))
        listed = await client.get("/v1/admin/exchange/dead-letters", headers=city)
        assert listed.status_code == 200, listed.text
        [dead] = listed.json()["items"]
        assert dead["events"] == 5 and dead["last_status"] == 422
        auditor = auth_headers(app, admin("auditor"))
        assert (await client.post(f"/v1/admin/exchange/dead-letters/{dead['id']}/resend", headers=auditor)).status_code == 403
        district = auth_headers(app, admin("district", district="310115"))
        assert (await client.get("/v1/admin/exchange/dead-letters", headers=district)).status_code == 403
        resent = await client.post(f"/v1/admin/exchange/dead-letters/{dead['id']}/resend", headers=city)
        assert resent.status_code == 200, resent.text
        again = await client.post(f"/v1/admin/exchange/dead-letters/{dead['id']}/resend", headers=city)
        assert again.status_code == 404 and again.json()["type"].endswith("dead-letter-not-found")
        async with asyncio.timeout(20):  # the 6 events, and the re-send's audit entry (stream audit)
            while len(receiver.deduped()) < 7:
                await asyncio.sleep(0.05)
        relay.stop()
        await task
    finally:
        await receiver.stop()
    assert (await client.get("/v1/admin/exchange/dead-letters", headers=city)).json()["items"] == []
    figures = await exchange.exchange_figures(conn)
    assert figures.dead_lettered == 0 and figures.delivered == 7
    [resend] = [e for e in receiver.deduped().values() if e["type"] == "audit.entry"]
    assert resend["data"]["action"] == "exchange.resend" and resend["data"]["object"]["id"] == dead["id"]
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'exchange.resend'") == 1


async def test_a_relay_that_lost_its_lease_cannot_move_the_cursor(conn, pool, keyring, receiver):
    for i in range(3):
        await write_event(conn, "roster.imported", {"i": i, "lines": 1})
    first = make_relay(pool, keyring, receiver.url)
    await first._renew()
    old = first.epoch
    assert old is not None
    await conn.execute("UPDATE exchange_lease SET expires_at = now() - interval '1 s'")
    second = make_relay(pool, keyring, receiver.url)
    await second._renew()
    assert second.epoch == old + 1
    with pytest.raises(_LostLease):
        await first.step(old)
    assert await conn.fetchval("SELECT count(*) FROM exchange_batches") == 0
    assert await second.step(second.epoch)
    assert len(receiver.deduped()) == 3


async def test_file_sink_rotates_and_writes_the_sealed_bytes(settings, conn, pool, keyring, tmp_path):
    """Without a URL, CHONGJUN_EXCHANGE_DIR: one NDJSON line per event, byte for byte as in the
    sealed batch, a new file past the size limit, and one line per batch with its seal."""
    for i in range(30):
        await write_event(conn, "roster.imported", {"i": i, "lines": 1})
    assert isinstance(exchange.make_sink(msgspec.structs.replace(settings, exchange_url=None, exchange_dir=tmp_path)),
                      FileSink)
    relay = Relay(pool, FileSink(tmp_path, max_bytes=1500), KeyRingSigner(keyring), Pseudonyms(b"k" * 32),
                  batch_size=10, poll_seconds=0.02, lease_ttl=3.0)
    task = asyncio.create_task(relay.run())
    try:
        async with asyncio.timeout(30):
            while (await exchange.exchange_figures(conn)).delivered < 30:
                await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await task
    files = sorted(tmp_path.glob("events-*.ndjson"))
    assert [f.name for f in files] == ["events-000001.ndjson", "events-000002.ndjson", "events-000003.ndjson"]
    lines = [line for f in files for line in f.read_bytes().splitlines()]
    assert [msgspec.json.decode(line)["data"]["i"] for line in lines] == list(range(30))
    assert [msgspec.json.decode(line)["seq"] for line in lines] == list(range(1, 31))
    stored = await conn.fetch("SELECT seq, batch_id::text, body, seal FROM exchange_batches ORDER BY seq")
    batches = [msgspec.json.decode(line) for line in (tmp_path / "batches.ndjson").read_bytes().splitlines()]
    assert [(b["sequence"], b["batch_id"], b["seal"], b["events"]) for b in batches] == [
        (row["seq"], row["batch_id"], row["seal"], 10) for row in stored]
    for row, f in zip(stored, files):
        for line in f.read_bytes().splitlines():
            assert line in bytes(row["body"])  # the event exactly as sealed


async def test_order_is_by_transaction_id_not_its_text(conn, pool, keyring, receiver):
    """Transaction 99 before 100, though '100' < '99' as text: the batch read once sorted by the
    xid's text, so a batch cut between them moved the cursor past 99's events, never sent."""
    for tx in (100, 99, 100, 99, 100, 99):  # positions interleave; commit order is the xid's
        await conn.execute(
            "INSERT INTO outbox (tx, stream, type, version, payload) VALUES ($1::text::xid8, 'roster', 'roster.imported', 1,"
            " jsonb_build_object('tx', $1::int, 'lines', 1))", str(tx))
    await drain(make_relay(pool, keyring, receiver.url, batch_size=2), receiver, 6)
    assert [e["data"]["tx"] for e in receiver.events()] == [99, 99, 99, 100, 100, 100]
    receiver.check_order()


async def test_the_backlog_figure_is_counted_up_to_a_cap_and_estimated_beyond(conn):
    """Every worker samples the backlog every few seconds, so its cost must not grow with it
    (issue 16: counting 229,000 waiting events took 101 ms). Up to the cap it is the exact count;
    beyond, the positions taken since the cursor, which also count an insert rolled back."""
    from exchange import db

    async def backlog(**cap) -> int:
        return (await db.figures(conn, **cap))["backlog"]

    await write_event(conn, "roster.imported", {"lines": 1})  # at least one waiting: beyond a cap of 0
    exact, estimated = await backlog(), await backlog(counted_up_to=0)
    assert exact == await conn.fetchval(
        "SELECT count(*) FROM outbox o, exchange_lease l WHERE l.name = 'exchange' AND (o.tx, o.position) > (l.cursor_tx, l.cursor_pos)"
    )
    for number in range(30):
        await write_event(conn, "roster.imported", {"lines": number})
    assert await backlog() == exact + 30
    assert await backlog(counted_up_to=0) == estimated + 30
    assert await backlog(counted_up_to=exact + 30) == exact + 30  # at the cap: still counted

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack):
        async with conn.transaction():
            await write_event(conn, "roster.imported", {"lines": 0})
            raise RolledBack
    assert await backlog() == exact + 30
    assert await backlog(counted_up_to=0) == estimated + 31
