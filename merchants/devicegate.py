"""Is this device still allowed to act? The check the auth middleware runs for device tokens.

A device JWT lives a few minutes, so revoking a device (or suspending its merchant, closing its
venue, rolling its secret) must also stop tokens already issued. PostgreSQL holds the truth;
Redis holds one key per device so that the hot path costs at most one GET:

    cj:device:{<id>}:state = "r"            refused (revoked, venue closed, merchant not active)
                           = "g:<n>"        active; only tokens of secret generation <n> pass

A device token carries the generation of the secret it was issued under (`gen`), and each roll
bumps the device's generation: a token of the old secret fails by number, whatever the clocks say.

Reading: an in-process entry younger than 1 s answers without any I/O; otherwise one Redis GET;
a missing key (never cached, expired, or Redis lost its data) or a Redis error falls back to
PostgreSQL, and the answer is written back with SET NX. Writing: a change writes "r" (or the new
"g:<n>") over the key; because fallback readers only ever SET NX, a reader that saw the old
state in PostgreSQL cannot overwrite a newer marker. Losing Redis therefore costs a PG read,
never a revocation. The "active" marker expires after ACTIVE_TTL seconds, which bounds the one
case Redis cannot see: a change whose Redis write failed while readers still reached Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from foundation.errors import Unavailable
from merchants import db
from merchants.errors import DeviceRevoked

__all__ = ("ACTIVE_TTL", "LOCAL_TTL", "check_device", "forget_local", "publish_refused", "publish_state", "state_key")

log = logging.getLogger("chongjun.merchants.devices")

LOCAL_TTL = 1.0
"""Seconds an answer is reused inside one process: the bound on revocation delay across workers."""
ACTIVE_TTL = 10
"""Seconds a marker written by a reader lives in Redis before PostgreSQL is asked again."""
REFUSED_TTL = 3600
"""A refusal written by the change itself outlives every device token; PostgreSQL still says no after."""
_REDIS_BACKOFF = 1.0
"""After a Redis error, go straight to PostgreSQL for this long instead of waiting on timeouts."""
_LOCAL_MAX = 50_000

_REFUSED = "r"
_ACTIVE = "g:"
_local: dict[UUID, tuple[float, str]] = {}
_redis_down_until = 0.0


def state_key(device_id: UUID) -> str:
    # Hash-tagged so the key lands on one slot in a Redis Cluster (single-key commands only).
    return f"cj:device:{{{device_id}}}:state"


def forget_local(device_ids: Iterable[UUID] | None = None) -> None:
    """Drop this process's cached answers (all of them with no argument)."""
    if device_ids is None:
        _local.clear()
        return
    for device_id in device_ids:
        _local.pop(device_id, None)


async def _from_postgres(pool: asyncpg.Pool, device_id: UUID) -> str:
    try:
        async with pool.acquire() as conn:
            row = await db.device_state(conn, device_id)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Neither Redis nor PostgreSQL can say: refuse (503), never wave the device through.
        raise Unavailable("The device's status cannot be checked right now") from exc
    if row is None or not row["usable"]:
        return _REFUSED
    return f"{_ACTIVE}{row['secret_generation']}"


async def _read(device_id: UUID, *, pool: asyncpg.Pool, redis: aioredis.Redis) -> str:
    global _redis_down_until
    now = time.monotonic()
    redis_usable = now >= _redis_down_until
    if redis_usable:
        try:
            raw = await redis.get(state_key(device_id))
            if raw is not None:
                state = raw.decode() if isinstance(raw, bytes) else raw
                if state == _REFUSED or state.startswith(_ACTIVE):
                    return state
                # A marker this release does not write (an older release's): ask PostgreSQL.
        except (RedisError, OSError) as exc:
            log.warning("device state: redis unavailable, using postgres", extra={"fields": {"error": type(exc).__name__}})
            _redis_down_until = now + _REDIS_BACKOFF
            redis_usable = False
    state = await _from_postgres(pool, device_id)
    if redis_usable:
        try:
            # Short-lived either way: a reader may have seen PostgreSQL just before a change committed.
            await redis.set(state_key(device_id), state, ex=ACTIVE_TTL, nx=True)
        except (RedisError, OSError):
            _redis_down_until = time.monotonic() + _REDIS_BACKOFF
    return state


async def check_device(
    device_id: UUID,
    *,
    secret_generation: int | None,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> None:
    """Raise DeviceRevoked unless the device may act now with a token of `secret_generation`.

    A token without a generation (issued before generations existed) is refused like an old one.
    """
    now = time.monotonic()
    cached = _local.get(device_id)
    if cached is not None and cached[0] > now:
        state = cached[1]
    else:
        state = await _read(device_id, pool=pool, redis=redis)
        if len(_local) >= _LOCAL_MAX:
            _local.clear()
        _local[device_id] = (now + LOCAL_TTL, state)
    if state == _REFUSED:
        raise DeviceRevoked("This device has been revoked or its venue is not active")
    if secret_generation is None or secret_generation != int(state.removeprefix(_ACTIVE)):
        raise DeviceRevoked("This token was issued for an earlier secret of this device")


async def publish_refused(redis: aioredis.Redis, device_ids: Iterable[UUID]) -> None:
    """Tell every worker now: these devices are refused (written over any active marker)."""
    device_ids = list(device_ids)
    forget_local(device_ids)
    if not device_ids:
        return
    try:
        for device_id in device_ids:
            await redis.set(state_key(device_id), _REFUSED, ex=REFUSED_TTL)
    except (RedisError, OSError) as exc:
        # PostgreSQL already says refused; Redis readers see it once the active marker expires.
        log.error("device state: could not publish a refusal to redis", extra={"fields": {"error": type(exc).__name__}})


async def publish_state(
    redis: aioredis.Redis, device_ids: Iterable[UUID], *, secret_generation: int | None = None
) -> None:
    """After a change that may re-allow devices (or roll a secret): set or drop their markers."""
    device_ids = list(device_ids)
    forget_local(device_ids)
    try:
        for device_id in device_ids:
            if secret_generation is None:
                await redis.delete(state_key(device_id))  # the next reader asks PostgreSQL
            else:
                await redis.set(state_key(device_id), f"{_ACTIVE}{secret_generation}", ex=ACTIVE_TTL)
    except (RedisError, OSError) as exc:
        log.error("device state: could not publish to redis", extra={"fields": {"error": type(exc).__name__}})
