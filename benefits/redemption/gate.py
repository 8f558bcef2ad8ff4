"""The scan's Redis gate: the fast checks before a decision and the bookkeeping after one.

Redis only speeds the scan up; PostgreSQL decides. Before the decision one script (`_GATE`)
sets the Idempotency-Key's in-flight marker, counts the device's scans this minute and sets the
code's replay marker, saying whether it was there already (the code was presented before: a
hint that sends the scan to `consumed_codes` first). After an accepted scan under a benefit with
a per-person cap, one script (`_STALE`) makes the person's cached benefit list stale (its
remaining quota changed); under a benefit without one nothing in that list changed, so an
accepted scan there costs one Redis round trip in all. When Redis is
down every check still happens in PostgreSQL (the stored answer, `consumed_codes`) and the rate
is counted in this process instead.

Scripts keep the scan to one command per round trip (a pipeline of several costs the worker
twice the CPU in redis-py). They name keys of several hash slots: a single Redis server (or a
primary with replicas), not a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import logging
import time
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from benefits.catalog import person_stale_mark
from foundation.cache import LocalCache
from foundation.structs import Record

__all__ = ("Gate", "ask", "mark_quota_stale", "release_marker")

log = logging.getLogger("chongjun.scan")

REPLAY_TTL = 180
"""Seconds a used code stays in the replay pre-check: longer than a code's life plus the leeway."""
MARKER_TTL = 30
"""Seconds an Idempotency-Key stays "in flight" if its request never finishes."""

# KEYS: the Idempotency-Key marker, the device's rate window, the code's replay marker (a
# placeholder when unused; set on first sight, so `seen` means "presented before"). ARGV: this request's token, then "1"/"0" for: a key was sent, the rate
# limit is on, a code was verified. The marker holds the request's token: if the script is re-sent
# after a lost reply, the SET NX that already ran fails, but the marker still names this request,
# so it is not "in flight".
_GATE = f"""
local fresh = 1
if ARGV[2] == '1' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', {MARKER_TTL}) then
    fresh = redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
end
local count = 0
if ARGV[3] == '1' then
    count = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], 120)
end
local seen = 0
if ARGV[4] == '1' and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', {REPLAY_TTL}) then
    seen = 1
end
return {{fresh, count, seen}}
"""

# KEYS: the person's generation key, their cached list (person_stale_mark).
# ARGV: the new generation, its TTL.
_STALE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""

# Compare and delete: only this request's own marker, never one another request set since.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

_SHA = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_GATE, _STALE)}
_UNUSED = "cj:unused"


class Gate(Record):
    """What the round trip before the decision tells: Idempotency-Key, rate and replay."""

    key_fresh: bool = True
    """False: another request holds (or held) this key: answered already, or still in flight"""
    scans_this_minute: int = 0
    seen_before: bool = False
    """the code was presented before, within REPLAY_TTL (a hint: `consumed_codes` decides)"""


def _marker_key(caller: str, key: str) -> str:
    return f"cj:idem:{{{caller}}}:{key}"


def _used_key(jti: str) -> str:
    return f"cj:used:{{{jti}}}"


async def _run(redis: aioredis.Redis, script: str, keys: list[str], args: list[object]) -> object:
    try:
        return await redis.evalsha(_SHA[script], len(keys), *keys, *args)
    except NoScriptError:  # a restarted Redis: send the script itself, which loads it again
        return await redis.eval(script, len(keys), *keys, *args)


async def ask(
    redis: aioredis.Redis, *, caller: str, key: str | None, token: str, jti: str | None, per_minute: int
) -> Gate:
    """The three fast checks in one round trip. Redis down → the key's first answer still wins
    in PostgreSQL, single use is still `consumed_codes`' primary key, and the rate is counted in
    this process instead (so a device gets at most the rate per worker while Redis is away)."""
    keys = [
        _marker_key(caller, key) if key is not None else _UNUSED,
        f"cj:rate:{{{caller}}}:{int(time.time() // 60)}",
        _used_key(jti) if jti is not None else _UNUSED,
    ]
    flags = ["1" if on else "0" for on in (key is not None, per_minute > 0, jti is not None)]
    try:
        fresh, count, seen = await _run(redis, _GATE, keys, [token, *flags])  # type: ignore[misc]
    except RedisError:
        return Gate(scans_this_minute=_count_locally(caller) if per_minute > 0 else 0)
    return Gate(key_fresh=bool(fresh), scans_this_minute=int(count), seen_before=bool(seen))


_local_rate: LocalCache[str, tuple[int, int]] = LocalCache(maxsize=50_000, ttl=120.0)
"""caller -> (minute, scans this process counted in it): the rate limit while Redis cannot count."""


def _count_locally(caller: str) -> int:
    minute = int(time.time() // 60)
    counted_minute, count = _local_rate.get(caller, (minute, 0))  # type: ignore[misc]
    count = count + 1 if counted_minute == minute else 1
    _local_rate.put(caller, (minute, count))
    return count


async def release_marker(redis: aioredis.Redis, *, caller: str, key: str | None, token: str) -> None:
    """A request that ends without a stored answer must not leave its key "in flight"; only its
    own marker is removed, never one another request set since."""
    if key is None:
        return
    try:
        await redis.eval(_RELEASE, 1, _marker_key(caller, key), token)
    except RedisError:
        pass  # it expires within MARKER_TTL seconds


async def mark_quota_stale(redis: aioredis.Redis, *, person_id: UUID) -> None:
    """After the commit of a scan under a capped benefit: the person's benefit list goes stale."""
    mark = person_stale_mark(person_id)
    try:
        await _run(redis, _STALE, [mark.generation_key, mark.cache_key], [mark.generation, mark.generation_ttl])
    except RedisError:
        log.warning("redis unavailable after an accepted scan; caches refill from PostgreSQL")
