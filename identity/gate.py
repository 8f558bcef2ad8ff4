"""Is this principal still allowed to act? One state marker per subject, read on every request.

An access token lives minutes, so revoking what it stands for (a device, a session, an account,
a merchant) must also stop tokens already issued. PostgreSQL holds the truth; Redis holds one key
per subject so that the hot path costs at most one GET:

    cj:<kind>:{<id>}:state = "r"            refused
                           = "g:<n>"        active; only tokens of generation <n> pass

A `StateGate` is one kind of subject (devices, sessions) with the loader that asks PostgreSQL.
Reading: an in-process answer younger than `local_ttl` (1 s) answers without any I/O; otherwise
one Redis GET; a missing key (never cached, expired, or Redis lost its data) or a Redis error
falls back to PostgreSQL, and the answer is written back with SET NX. Writing (`StateGate.publish_refused`,
`publish_state`): a change writes "r" (or the new "g:<n>") over the key; because fallback readers
only ever SET NX, a reader that saw the old state in PostgreSQL cannot overwrite a newer marker.
Losing Redis therefore costs a PG read, never a revocation.

The "active" marker a reader writes expires after `ACTIVE_TTL` seconds, which bounds the one case
Redis cannot see: a change whose Redis write failed while readers still reached Redis. A process
that has itself seen Redis fail does not trust an active marker older than that failure either
(the marker carries its write time), so a Redis that comes back with old data un-revokes nothing.

A gate is a cache of that truth, so each kind has one per process (`merchants.devicegate.DEVICES`,
`identity.sessions.SESSIONS`), like the caches of `foundation.cache`: the change publishes
through the same gate, which drops this process's own answer, so the very next request in the
process that made the change is refused too. `forget()` drops everything (tests use it to play
"another worker").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from foundation.cache import MISSING, LocalCache
from foundation.errors import Unavailable

__all__ = ("ACTIVE", "ACTIVE_TTL", "LOCAL_TTL", "REFUSED", "REFUSED_TTL", "StateGate", "active", "state_key")

log = logging.getLogger("chongjun.identity.gate")

LOCAL_TTL = 1.0
"""Seconds an answer is reused inside one process: the bound on revocation delay across workers."""
ACTIVE_TTL = 10
"""Seconds a marker written by a reader lives in Redis before PostgreSQL is asked again."""
REFUSED_TTL = 3600
"""A refusal written by the change itself outlives every access token; PostgreSQL still says no after."""
REDIS_BACKOFF = 1.0
"""After a Redis error, go straight to PostgreSQL for this long instead of waiting on timeouts."""
LOCAL_MAX = 50_000

REFUSED = "r"
ACTIVE = "g:"

Loader = Callable[[asyncpg.Connection, UUID], Awaitable[str]]
"""Reads PostgreSQL: REFUSED, or `active(n)` for a subject allowed at generation n."""


def active(generation: int = 0) -> str:
    return f"{ACTIVE}{generation}"


def state_key(kind: str, subject: UUID) -> str:
    # Hash-tagged so the key lands on one slot in a Redis Cluster (single-key commands only).
    return f"cj:{kind}:{{{subject}}}:state"


def _reader_marker(state: str, now: float) -> str:
    """What a reader writes back: an active marker carries its write time ("g:<n>:<ms>")."""
    return state if state == REFUSED else f"{state}:{int(now * 1000)}"


class StateGate:
    """The liveness of one kind of subject, for this process (see the module docstring)."""

    def __init__(self, kind: str, load: Loader, *, unavailable: str) -> None:
        self.kind = kind
        self._load = load
        self._unavailable = unavailable
        self._local: LocalCache[UUID, str] = LocalCache(maxsize=LOCAL_MAX, ttl=LOCAL_TTL)
        self._redis_down_until = 0.0
        self._redis_failed_at = 0.0
        """Wall clock of this process's last Redis error: active markers written before it are stale."""

    def forget(self, subjects: Iterable[UUID] | None = None) -> None:
        """Drop this process's cached answers (with no argument: all of them, and the memory of
        Redis failures too, as if the process had just started)."""
        self._local.forget(subjects)
        if subjects is None:
            self._redis_down_until = self._redis_failed_at = 0.0

    async def publish_refused(self, redis: aioredis.Redis, subjects: Iterable[UUID]) -> None:
        """Tell every worker now: these subjects are refused (written over any active marker).

        Call it inside the transaction that makes the change, before it commits: a reader that
        reaches PostgreSQL in between still sees the old state but cannot SET NX over this marker.
        This process's own answers are dropped, so its very next request is refused.
        """
        subjects = list(subjects)
        self.forget(subjects)
        try:
            for subject in subjects:
                await redis.set(state_key(self.kind, subject), REFUSED, ex=REFUSED_TTL)
        except (RedisError, OSError) as exc:
            # PostgreSQL already says refused; Redis readers see it once the active marker expires.
            log.error(
                "%s state: could not publish a refusal to redis", self.kind, extra={"fields": {"error": type(exc).__name__}}
            )

    async def publish_state(
        self, redis: aioredis.Redis, subjects: Iterable[UUID], *, generation: int | None = None
    ) -> None:
        """After a change that may re-allow subjects (or bump their generation): set or drop their markers."""
        subjects = list(subjects)
        self.forget(subjects)
        try:
            for subject in subjects:
                if generation is None:
                    await redis.delete(state_key(self.kind, subject))  # the next reader asks PostgreSQL
                else:
                    await redis.set(state_key(self.kind, subject), active(generation), ex=ACTIVE_TTL)
        except (RedisError, OSError) as exc:
            log.error("%s state: could not publish to redis", self.kind, extra={"fields": {"error": type(exc).__name__}})

    async def state(self, subject: UUID, *, pool: asyncpg.Pool, redis: aioredis.Redis) -> str:
        """REFUSED or "g:<n>"; Unavailable (503) when neither Redis nor PostgreSQL can say."""
        cached = self._local.lookup(subject)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]
        state = await self._read(subject, pool=pool, redis=redis)
        self._local.put(subject, state)
        return state

    def _redis_failed(self, exc: BaseException) -> None:
        log.warning(
            "%s state: redis unavailable, using postgres", self.kind, extra={"fields": {"error": type(exc).__name__}}
        )
        self._redis_down_until = time.monotonic() + REDIS_BACKOFF
        self._redis_failed_at = time.time()

    async def _read(self, subject: UUID, *, pool: asyncpg.Pool, redis: aioredis.Redis) -> str:
        key = state_key(self.kind, subject)
        redis_usable = time.monotonic() >= self._redis_down_until
        distrusted = False
        if redis_usable:
            try:
                raw = await redis.get(key)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                redis_usable = False
            else:
                if raw is not None and (state := self._trusted(raw)) is not None:
                    return state
                # Missing, a marker this release does not write, or one older than a Redis
                # failure this process saw: ask PostgreSQL.
                distrusted = raw is not None
        state = await self._from_postgres(subject, pool)
        if redis_usable:
            try:
                if distrusted and state == REFUSED:
                    # The marker there is wrong: correct it for the workers that would trust it.
                    # (Refusing is the safe side of a race; this refusal expires like a reader's.)
                    await redis.set(key, REFUSED, ex=ACTIVE_TTL)
                else:
                    # Short-lived: a reader may have seen PostgreSQL just before a change committed.
                    await redis.set(key, _reader_marker(state, time.time()), ex=ACTIVE_TTL, nx=True)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return state

    def _trusted(self, raw: bytes | str) -> str | None:
        marker = raw.decode() if isinstance(raw, bytes) else raw
        if marker == REFUSED:
            return REFUSED
        if not marker.startswith(ACTIVE):
            return None
        generation, _, written_ms = marker[len(ACTIVE) :].partition(":")
        if not generation.isdigit() or (written_ms and not written_ms.isdigit()):
            return None
        if written_ms and int(written_ms) / 1000 <= self._redis_failed_at + REDIS_BACKOFF:
            return None
        return active(int(generation))

    async def _from_postgres(self, subject: UUID, pool: asyncpg.Pool) -> str:
        try:
            async with pool.acquire() as conn:
                return await self._load(conn, subject)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Neither Redis nor PostgreSQL can say: refuse (503), never wave the caller through.
            raise Unavailable(self._unavailable) from exc
