"""`chongjun bench exchange`: drain a backlog of N outbox events to a local HTTP receiver.

A scratch database gets N events (a mix of the real types and shapes, a third of them with a
person); a receiver on 127.0.0.1 (asyncio, in this process) accepts every batch, checks nothing
but JSON and keeps the event ids; the relay (the real one: lease, commit-safe cursor, sealing
with a throwaway Ed25519 key ring, fenced marks) runs until every event was accepted. Events/s =
N / wall time from the relay's start to the last acceptance. The scratch database is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec

import identity
from chongjun.bench.scratch import scratch_database
from exchange import HttpSink, Pseudonyms, Relay
from exchange.seal import KeyRingSigner
from foundation.connections import connect_postgres
from foundation.settings import Settings

__all__ = ("ExchangeBench", "LocalReceiver", "run_exchange_bench")


class ExchangeBench(msgspec.Struct, frozen=True):
    events: int
    received: int
    distinct: int
    batches: int
    batch_size: int
    seconds: float
    events_per_second: float
    fill_seconds: float


class LocalReceiver:
    """A data center on 127.0.0.1 that accepts every batch (JSON checked, ids kept); also the
    receiver of `chongjun bench scans --exchange http`."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.received = 0
        self.batches = 0
        self.done = asyncio.Event()
        self.expected = 0
        self.last_at = time.monotonic()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = msgspec.json.decode(await reader.readexactly(length))
                self.batches += 1
                self.last_at = time.monotonic()
                for event in body["events"]:
                    self.received += 1
                    self.ids.add(event["id"])
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                await writer.drain()
                if self.expected and len(self.ids) >= self.expected:
                    self.done.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


_FILL = """
INSERT INTO outbox (stream, type, version, subject, payload)
SELECT CASE WHEN i % 3 = 0 THEN 'ledger' ELSE 'scans' END,
       CASE WHEN i % 3 = 0 THEN 'redemption.accepted' ELSE 'scan.refused' END,
       1,
       CASE WHEN i % 3 = 0 THEN gen_random_uuid() END,
       jsonb_build_object('redemption_id', gen_random_uuid(), 'service_day', current_date, 'benefit_id', gen_random_uuid(),
                          'benefit_version', 1, 'benefit_code', 'C8', 'venue_id', gen_random_uuid(),
                          'merchant_id', gen_random_uuid(), 'device_id', gen_random_uuid(), 'staff_id', NULL,
                          'code_source', 'cj', 'companions', 0, 'value_kind', 'free', 'value_fen', 0, 'priority', false)
FROM generate_series(1, $1) AS i
"""


async def run_exchange_bench(
    settings: Settings, *, events: int, batch_size: int, echo: Callable[[str], None] = print
) -> ExchangeBench:
    async with scratch_database(settings) as (scratch, conn):
        started = time.perf_counter()
        for offset in range(0, events, 20_000):  # several transactions, like real writers
            await conn.execute(_FILL, min(20_000, events - offset))
        fill_seconds = time.perf_counter() - started
        echo(f"filled the outbox with {events} events in {fill_seconds:.1f} s")
        ring = identity.KeyRing(identity.SecretStore(scratch.data_dir / "bench-secrets", production=False))
        ring.use([identity.generate_key("EdDSA")])
        receiver = LocalReceiver()
        receiver.expected = events
        server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = await connect_postgres(scratch, min_size=1, max_size=4)
        relay = Relay(pool, HttpSink(f"http://127.0.0.1:{port}/ingest", timeout=30), KeyRingSigner(ring),
                      Pseudonyms(b"bench-pseudonym-key-0123456789abcdef"), batch_size=batch_size, poll_seconds=0.05)
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        try:
            await receiver.done.wait()
            seconds = time.perf_counter() - started
        finally:
            relay.stop()
            await task
            await pool.close()
            server.close()
            await server.wait_closed()
    return ExchangeBench(
        events=events, received=receiver.received, distinct=len(receiver.ids), batches=receiver.batches,
        batch_size=batch_size, seconds=seconds, events_per_second=events / seconds, fill_seconds=fill_seconds,
    )
