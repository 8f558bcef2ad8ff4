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
twice the CPU in redis-py). Each part touches one hash slot: the Idempotency-Key marker and the
rate window are the caller's (`{device:<id>}`), the replay marker is the code's (`{<jti>}`). On one
server (no slots) both parts run as one script: one command, one round trip, as before. On a Redis
Cluster they are one script per slot (`foundation.scripts`), sent together: two commands at most,
answered in parallel, so the scan still waits for one round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from redis.exceptions import RedisError

from benefits.catalog import person_stale_mark
from foundation.batching import ScriptBatcher
from foundation.cache import LocalCache
from foundation.connections import ClusterClient, RedisClient
from foundation.scripts import Script
from foundation.structs import Record

__all__ = ("Gate", "ask", "ask_batches", "mark_quota_stale", "release_marker")

log = logging.getLogger("chongjun.scan")

REPLAY_TTL = 180
"""Seconds a used code stays in the replay pre-check: longer than a code's life plus the leeway."""
MARKER_TTL = 30
"""Seconds an Idempotency-Key stays "in flight" if its request never finishes."""

# The caller's part. KEYS: the Idempotency-Key marker (a placeholder of the same slot when no key
# was sent), the device's rate window; both tagged with the caller. ARGV: this request's token,
# then "1"/"0" for: a key was sent, the rate limit is on. The marker holds the request's token: if
# the script is re-sent after a lost reply, the SET NX that already ran fails, but the marker still
# names this request, so it is not "in flight".
_CALLER_PART = f"""
local fresh = 1
if ARGV[2] == '1' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', {MARKER_TTL}) then
    fresh = redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
end
local count = 0
if ARGV[3] == '1' then
    count = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], 120)
end
"""


def _code_part(key: str, when: str) -> str:
    """The code's part: its replay marker (tagged with the jti), set on first sight, so `seen`
    means "presented before"."""
    return f"""
local seen = 0
if {when} and not redis.call('SET', {key}, '1', 'NX', 'EX', {REPLAY_TTL}) then
    seen = 1
end
"""


_CALLER = Script(_CALLER_PART + "return {fresh, count}", name="scan-gate-caller")
_CODE = Script(_code_part("KEYS[1]", "true") + "return seen", name="scan-gate-code")
# Both parts in one (KEYS[3] the replay marker, ARGV[4] "1" when a code was verified): one server only.
_SERVER = Script(
    _CALLER_PART + _code_part("KEYS[3]", "ARGV[4] == '1'") + "return {fresh, count, seen}",
    name="scan-gate", single_server=True,
)

# KEYS: the person's generation key, their cached list (person_stale_mark: both the person's slot).
# ARGV: the new generation, its TTL.
_STALE = Script(
    """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
""",
    name="quota-stale",
)

# Compare and delete: only this request's own marker, never one another request set since.
_RELEASE = Script(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    name="release-marker",
)


class Gate(Record):
    """What the round trip before the decision tells: Idempotency-Key, rate and replay."""

    key_fresh: bool = True
    """False: another request holds (or held) this key: answered already, or still in flight"""
    scans_this_minute: int = 0
    seen_before: bool = False
    """the code was presented before, within REPLAY_TTL (a hint: `consumed_codes` decides)"""


def _marker_key(caller: str, key: str | None) -> str:
    return f"cj:idem:{{{caller}}}:{key}" if key is not None else f"cj:unused:{{{caller}}}"


def _used_key(jti: str) -> str:
    return f"cj:used:{{{jti}}}"


def ask_batches(redis: RedisClient, *, in_flight: int) -> ScriptBatcher | None:
    """`ask`'s script for a worker's concurrent scans, many a round trip (None on a cluster)."""
    if isinstance(redis, ClusterClient):
        return None
    return ScriptBatcher(redis, _SERVER, max_in_flight=in_flight)


async def ask(
    redis: RedisClient, *, caller: str, key: str | None, token: str, jti: str | None, per_minute: int,
    batches: ScriptBatcher | None = None,
) -> Gate:
    """The three fast checks in one round trip (with `batches`, shared with other scans'). Redis
    down → the key's first answer still wins in PostgreSQL, single use is still `consumed_codes`'
    primary key, and the rate is counted in this process instead (so a device gets at most the
    rate per worker while Redis is away)."""
    caller_keys = [_marker_key(caller, key), f"cj:rate:{{{caller}}}:{int(time.time() // 60)}"]
    caller_args = [token, "1" if key is not None else "0", "1" if per_minute > 0 else "0"]
    if isinstance(redis, ClusterClient):
        return await _ask_cluster(redis, caller, caller_keys, caller_args, jti, per_minute)
    keys = [*caller_keys, _used_key(jti) if jti is not None else "cj:unused"]
    try:
        args = [*caller_args, "1" if jti is not None else "0"]
        fresh, count, seen = await (_SERVER.run(redis, keys, args) if batches is None else batches.run(keys, args))
    except RedisError:
        return Gate(scans_this_minute=_count_locally(caller) if per_minute > 0 else 0)
    return Gate(key_fresh=bool(fresh), scans_this_minute=int(count), seen_before=bool(seen))


async def _ask_cluster(
    redis: RedisClient, caller: str, caller_keys: list[str], caller_args: list[str], jti: str | None, per_minute: int
) -> Gate:
    """One script per slot, sent at once; a part whose master is away falls back on its own."""
    wants_caller = caller_args[1] == "1" or per_minute > 0
    parts = [_CALLER.run(redis, caller_keys, caller_args)] if wants_caller else []
    if jti is not None:
        parts.append(_CODE.run(redis, [_used_key(jti)]))
    answers = list(await asyncio.gather(*parts, return_exceptions=True))
    for answer in answers:
        if isinstance(answer, BaseException) and not isinstance(answer, RedisError):
            raise answer
    fresh, count = True, 0
    if wants_caller:
        caller_answer = answers.pop(0)
        if isinstance(caller_answer, RedisError):
            count = _count_locally(caller) if per_minute > 0 else 0
        else:
            fresh, count = bool(caller_answer[0]), int(caller_answer[1])
    seen = bool(answers[0]) if answers and not isinstance(answers[0], RedisError) else False
    return Gate(key_fresh=fresh, scans_this_minute=count, seen_before=seen)


_local_rate: LocalCache[str, tuple[int, int]] = LocalCache(maxsize=50_000, ttl=120.0)
"""caller -> (minute, scans this process counted in it): the rate limit while Redis cannot count."""


def _count_locally(caller: str) -> int:
    minute = int(time.time() // 60)
    counted_minute, count = _local_rate.get(caller, (minute, 0))  # type: ignore[misc]
    count = count + 1 if counted_minute == minute else 1
    _local_rate.put(caller, (minute, count))
    return count


async def release_marker(redis: RedisClient, *, caller: str, key: str | None, token: str) -> None:
    """A request that ends without a stored answer must not leave its key "in flight"; only its
    own marker is removed, never one another request set since."""
    if key is None:
        return
    try:
        await _RELEASE.run(redis, [_marker_key(caller, key)], [token])
    except RedisError:
        pass  # it expires within MARKER_TTL seconds


async def mark_quota_stale(redis: RedisClient, *, person_id: UUID) -> None:
    """After the commit of a scan under a capped benefit: the person's benefit list goes stale."""
    mark = person_stale_mark(person_id)
    try:
        await _STALE.run(redis, [mark.generation_key, mark.cache_key], [mark.generation, mark.generation_ttl])
    except RedisError:
        log.warning("redis unavailable after an accepted scan; caches refill from PostgreSQL")
