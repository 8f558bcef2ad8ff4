"""The relay: outbox → sealed batches → the sink, at least once, in order, one active at a time.

- **One active relay** across workers and hosts: a lease row (`exchange_lease`) with an expiry
  and an epoch. Every worker of `serve` (and any `chongjun relay`) runs a `Relay`; the one that
  holds the lease relays, the others wait to take over an expired lease. Not a session advisory
  lock: that belongs to a pooled connection and outlives the task that took it. Every write the
  relay makes (forming a batch, marking it delivered) is fenced by holder and epoch, so a relay
  that lost its lease while paused cannot move the cursor; the epoch is also sent
  (`X-Chongjun-Relay-Epoch`) for receivers that fence themselves.
- **Order**: events are read after the cursor in `(tx, position)` order, only from transactions
  below the snapshot's xmin (finished), so none can appear behind the cursor later. Each event
  gets the next number of its stream. A batch is formed once, its exact bytes and seal stored,
  and batches are sent strictly one after another, oldest first: a new one is formed only when
  none is pending.
- **At least once**: a batch counts as delivered only after the sink said so; a relay killed
  mid-batch leaves it pending and whoever relays next sends the same bytes (same `batch_id`,
  same event ids) again. Receivers dedupe by event `id`.
- Failures: 408, 429, 5xx, timeouts and refused connections are retried with exponential
  backoff and full jitter (sleep U(0, min(cap, base·2^attempt))); any other 4xx puts the batch
  in the dead-letter state (admins list and re-send it) and the relay goes on with the next.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import random
import socket
import time
import uuid
from typing import Any

import asyncpg
import msgspec

from exchange import db
from exchange.seal import BatchSigner
from exchange.sinks import Sink

__all__ = ("PSEUDONYM_SECRET", "Pseudonyms", "Relay")

log = logging.getLogger("chongjun.exchange")

PSEUDONYM_SECRET = "exchange-pseudonym-key"


class Pseudonyms:
    """A person's pseudonym for the data center: HMAC-SHA256 of our internal person id under a
    key that never leaves us (secret `exchange-pseudonym-key`), 128 bits, base64url. Stable for
    as long as the key is; never an ID number or a name, and not reversible without the key."""

    _CACHED = 65_536
    """Pseudonyms kept (people who come back, e.g. on a busy day's ledger and ratings); at most
    about 10 MB, cleared whole when full."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._known: dict[uuid.UUID, str] = {}

    def of(self, person_id: uuid.UUID) -> str:
        known = self._known.get(person_id)
        if known is None:
            digest = hmac.digest(self._key, b"cj-exchange-person-v1:" + person_id.bytes, "sha256")[:16]
            known = "p1." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if len(self._known) >= self._CACHED:
                self._known.clear()
            self._known[person_id] = known
        return known


class _Event(msgspec.Struct, frozen=True, omit_defaults=False):
    id: uuid.UUID
    stream: str
    seq: int
    type: str
    v: int
    at: Any
    person: str | None
    data: msgspec.Raw  # the payload's JSON as PostgreSQL wrote it: never decoded and encoded again


class _Body(msgspec.Struct, frozen=True):
    batch_id: uuid.UUID
    sequence: int
    previous: str
    events: list[_Event]


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sink: Sink,
        signer: BatchSigner,
        pseudonyms: Pseudonyms,
        *,
        holder: str | None = None,
        batch_size: int = 500,
        lease_ttl: float = 10.0,
        poll_seconds: float = 0.25,
        backoff_base: float = 0.2,
        backoff_max: float = 30.0,
    ) -> None:
        self.pool = pool
        self.sink = sink
        self.signer = signer
        self.pseudonyms = pseudonyms
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch_size = batch_size
        self.lease_ttl = lease_ttl
        self.poll_seconds = poll_seconds
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._epoch: int | None = None
        self._valid_until = 0.0
        self._stop = asyncio.Event()

    # --- the lease ---------------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        """The epoch while this relay holds a lease it renewed recently enough, else None."""
        if self._epoch is not None and time.monotonic() < self._valid_until:
            return self._epoch
        return None

    async def _renew(self) -> None:
        started = time.monotonic()
        try:
            async with self.pool.acquire() as conn:
                epoch = await db.acquire_lease(conn, holder=self.holder, ttl_seconds=self.lease_ttl)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            log.warning("exchange relay: lease renewal failed (%s)", type(exc).__name__)
            return
        if epoch is None:
            self._epoch = None
            return
        if epoch != self._epoch:
            log.info("exchange relay %s active at epoch %s", self.holder, epoch)
        # A margin below the TTL, measured from before the statement was sent.
        self._epoch, self._valid_until = epoch, started + self.lease_ttl * 0.8

    async def _lease_keeper(self) -> None:
        while not self._stop.is_set():
            await self._renew()
            await self._sleep(self.lease_ttl / 3)

    # --- the loop ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 30)))

    async def run(self) -> None:
        """Relay until `stop()`; gives the lease back on the way out."""
        keeper = asyncio.create_task(self._lease_keeper())
        failures = 0
        try:
            while not self._stop.is_set():
                epoch = self.epoch
                if epoch is None:
                    await self._sleep(min(self.poll_seconds * 4, self.lease_ttl / 3))
                    continue
                try:
                    sent = await self.step(epoch)
                    failures = 0
                except _LostLease:
                    self._epoch = None
                    continue
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                    failures += 1
                    log.warning("exchange relay: %s; retrying", type(exc).__name__)
                    await self._sleep(self._backoff(failures))
                    continue
                if sent < self.batch_size:
                    # Nothing, or a batch that was not full: wait a poll before forming the next,
                    # so a steady stream goes out in batches of a poll's worth instead of one
                    # round of statements, a seal and a POST for every few events.
                    await self._sleep(self.poll_seconds)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if self._epoch is not None:
                try:
                    async with self.pool.acquire() as conn:
                        await db.release_lease(conn, holder=self.holder, epoch=self._epoch)
                except Exception:  # noqa: BLE001 - shutting down; the lease expires by itself
                    pass
            await self.sink.close()

    async def step(self, epoch: int) -> int:
        """Deliver (or dead-letter) one batch: the oldest pending one, else a new one. Its number
        of events; 0 when there was nothing to send."""
        async with self.pool.acquire() as conn:
            batch = await db.next_pending(conn)
            if batch is None:
                batch = await self._form(conn, epoch)
        if batch is None:
            return 0
        await self._deliver(batch, epoch)
        return batch["events"]

    async def _form(self, conn: asyncpg.Connection, epoch: int) -> dict[str, Any] | None:
        async with conn.transaction():
            cursor = await db.read_cursor(conn)
            rows = await db.form_batch_rows(
                conn, cursor_tx=cursor["cursor_tx"], cursor_pos=cursor["cursor_pos"], limit=self.batch_size
            )
            if not rows:
                return None
            streams = sorted({row["stream"] for row in rows})
            last = await db.stream_seqs(conn, streams)
            events = []
            for row in rows:
                seq = last.get(row["stream"], 0) + 1
                last[row["stream"]] = seq
                subject = row["subject"]
                events.append(_Event(
                    id=row["id"], stream=row["stream"], seq=seq, type=row["type"], v=row["version"], at=row["at"],
                    person=self.pseudonyms.of(subject) if subject is not None else None,
                    data=msgspec.Raw(row["payload"].encode()),
                ))
            seq = cursor["last_batch"] + 1
            batch_id = uuid.uuid4()
            body = msgspec.json.encode(_Body(batch_id, seq, bytes(cursor["last_digest"]).hex(), events))
            seal = self.signer.sign_detached(body)
            formed = await db.insert_batch(
                conn, holder=self.holder, epoch=epoch,
                old_cursor=(cursor["cursor_tx"], cursor["cursor_pos"]),
                new_cursor=(rows[-1]["tx"], rows[-1]["position"]),
                seq=seq, batch_id=batch_id, first=(rows[0]["tx"], rows[0]["position"]), events=len(rows),
                first_at=min(row["at"] for row in rows), body=body, seal=seal,
                digest=hashlib.sha256(body).digest(), stream_last={s: last[s] for s in streams},
            )
            if not formed:
                raise _LostLease()
        # What _deliver reads of a batch, from memory: not its 200 kB body read back.
        return {"seq": seq, "events": len(rows), "body": body, "seal": seal, "attempts": 0}

    async def _deliver(self, batch: asyncpg.Record | dict[str, Any], epoch: int) -> None:
        attempt = batch["attempts"]
        while not self._stop.is_set():
            if self.epoch != epoch:
                return  # lost the lease: the next holder sends it
            outcome = await self.sink.send(seq=batch["seq"], epoch=epoch, body=bytes(batch["body"]), seal=batch["seal"])
            async with self.pool.acquire() as conn:
                if outcome.kind == "delivered":
                    await db.mark_delivered(conn, seq=batch["seq"], holder=self.holder, epoch=epoch, status=outcome.status or 0)
                    return
                if outcome.kind == "dead":
                    log.warning("exchange relay: batch %s dead-lettered (%s)", batch["seq"], outcome.status)
                    await db.mark_dead(conn, seq=batch["seq"], holder=self.holder, epoch=epoch,
                                       status=outcome.status or 0, error=outcome.error or "")
                    return
                await db.mark_retried(conn, seq=batch["seq"], holder=self.holder, epoch=epoch,
                                      status=outcome.status, error=outcome.error or "")
            attempt += 1
            await self._sleep(self._backoff(attempt))


class _LostLease(Exception):
    """The fenced cursor update found another holder or epoch: nothing was formed."""
