"""The relay in real processes: inside two `serve` processes with 2 workers each, and alone as
`chongjun relay`, killed with SIGKILL mid-stream; and a scan made while Redis is down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter

import msgspec

from api import create_app
from foundation.outbox import write_event
from litestar.testing import AsyncTestClient
from tests.exchange.receiver import Receiver
from tests.exchange.test_relay import drain, make_relay
from tests.factories.people import VETERAN_ID
from tests.factories.world import build_world, suishen
from tests.support import _RUNNING, free_port, kill_live_server, live_server


async def _wait_for(receiver: Receiver, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while len(receiver.deduped()) < count:
            await asyncio.sleep(0.1)


def _epochs(receiver: Receiver) -> list[int]:
    return [int(headers["x-chongjun-relay-epoch"]) for _, headers in receiver.raw]


async def test_two_serve_processes_one_active_relay_and_failover_loses_nothing(settings, conn):
    receiver = await Receiver().start()
    env = {"CHONGJUN_EXCHANGE_URL": receiver.url, "CHONGJUN_EXCHANGE_BACKOFF_MAX_SECONDS": "0.5",
           "CHONGJUN_EXCHANGE_BATCH_SIZE": "25"}
    try:
        with live_server(settings, workers=2, extra_env=env) as first, live_server(settings, workers=2, extra_env=env) as second:
            for i in range(200):
                await write_event(conn, "roster.imported", {"i": i, "lines": 1})
            await _wait_for(receiver, 200, 60)
            holder = await conn.fetchval("SELECT holder FROM exchange_lease")
            # exactly one relay of the four workers sent everything so far: one epoch
            assert len(set(_epochs(receiver))) == 1
            # kill whichever server holds the lease (by pid of its worker), keep writing
            active = first if _serves(first, holder) else second
            kill_live_server(active)
            for i in range(200, 400):
                await write_event(conn, "roster.imported", {"i": i, "lines": 1})
            await _wait_for(receiver, 400, 60)  # the lease expires (10 s) and the other server takes over
            assert await conn.fetchval("SELECT holder FROM exchange_lease") != holder
    finally:
        await receiver.stop()
    receiver.check_order()
    assert [e["data"]["i"] for e in receiver.deduped().values()] == list(range(400))
    epochs = _epochs(receiver)
    assert epochs == sorted(epochs) and len(set(epochs)) >= 2  # never two relays interleaved


def _serves(base_url: str, holder: str) -> bool:
    """Whether the lease holder (host:pid:nonce) is a worker of the server at base_url."""
    return os.getpgid(int(holder.split(":")[1])) == _RUNNING[base_url].pid


def _relay_process(settings, url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "CHONGJUN_DATA_DIR": str(settings.data_dir), "CHONGJUN_EXCHANGE_URL": url,
           "CHONGJUN_EXCHANGE_BACKOFF_MAX_SECONDS": "0.5", "CHONGJUN_EXCHANGE_BATCH_SIZE": "20",
           "CHONGJUN_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "chongjun.cli", "relay"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


async def test_relay_killed_mid_batch_and_restarted_delivers_everything(settings, conn, keyring):
    # Every 3rd request is kept but answered only after 5 s: the kill lands while the relay
    # waits for that answer, so the batch was received but never marked delivered.
    receiver = await Receiver(lambda n: ("sleep", 5.0, 200) if n % 3 == 0 else 200).start()
    for i in range(300):
        await write_event(conn, "venue.changed", {"action": "test", "id": str(i), "district": "310115", "fields": []})
    process = _relay_process(settings, receiver.url)
    try:
        async with asyncio.timeout(60):
            while receiver.requests < 3:
                await asyncio.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pending = await conn.fetchval("SELECT count(*) FROM exchange_batches WHERE status = 'pending'")
        assert pending == 1  # the batch in flight, not lost
        await conn.execute("UPDATE exchange_lease SET expires_at = now() - interval '1 s'")  # what 10 s would do
        receiver.behaviour = lambda n: 200
        process = _relay_process(settings, receiver.url)
        await _wait_for(receiver, 300, 60)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
        await receiver.stop()
    receiver.check_order()
    counts = Counter(e["id"] for e in receiver.events())
    assert len(counts) == 300 and max(counts.values()) == 2  # the in-flight batch came twice, nothing else
    assert await conn.fetchval("SELECT count(*) FROM exchange_batches WHERE status <> 'delivered'") == 0


async def test_scan_while_redis_is_down_reaches_the_receiver(app, client, conn, pool, keyring, receiver, settings):
    world = await build_world(client, app)
    dead_redis = msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    offline = create_app(dead_redis)
    async with AsyncTestClient(app=offline) as without_redis:
        answer = (await without_redis.post(
            "/v1/scans", json={"code": suishen(app, VETERAN_ID), "venue_id": world.venue_id}, headers=world.device_headers
        )).json()
    assert answer["decision"] == "accepted", answer
    total = await conn.fetchval("SELECT count(*) FROM outbox")
    await drain(make_relay(pool, keyring, receiver.url), receiver, total)
    [event] = [e for e in receiver.deduped().values() if e["type"] == "redemption.accepted"]
    assert event["data"]["redemption_id"] == answer["redemption_id"]
