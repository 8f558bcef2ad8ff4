"""The login throttle: every attempt is counted, atomically, before its password is checked.

Two counters per attempt: its username (5) and its client address (30), each a fixed window of
15 minutes from the first attempt it counted. `reserve_login` counts the attempt on both in one
atomic step each — a Lua script in Redis (compare with the limit, INCR, start the window), or,
while Redis does not answer, one SQL upsert on `login_attempts` in PostgreSQL. A counter at its
limit refuses without counting (429 `login-throttled`, Retry-After = what is left of its
window). Since nothing is read first and written later, however many attempts race on however
many workers, at most the limit of them per window reach the password check.

What the outcome does to the counts:
- a failure (wrong password, unknown user, missing or wrong TOTP, disabled account) keeps its
  reservation: it is the counted failure;
- a success clears the username's counter (the limit is on consecutive failures, as NIST
  SP 800-63B §5.2.2 asks) and gives its reservation back to the client's, which so counts only
  failures: an office behind one address is never locked out by its own good logins;
- a refusal by the client counter gives back what the username counter had reserved.

Bounds while Redis is down: the PostgreSQL counter is shared by every worker and machine, so
the limits hold exactly. The two stores count separately: an attacker whose window starts in
one store and goes on in the other (Redis going away or coming back mid-window) gets at most one
limit more, once per switch; a Redis that loses its data forgets its windows the same way.
"""

from __future__ import annotations

import hashlib
import logging
import time

import asyncpg
from redis.exceptions import RedisError

from foundation.connections import RedisClient
from foundation.scripts import Script
from foundation.structs import Record
from identity import db
from identity.errors import LoginThrottled

__all__ = (
    "CLIENT_FAILURE_LIMIT",
    "THROTTLE_WINDOW_SECONDS",
    "USER_FAILURE_LIMIT",
    "LoginAttempt",
    "reserve_login",
)

log = logging.getLogger("chongjun.identity.throttle")

USER_FAILURE_LIMIT = 5
CLIENT_FAILURE_LIMIT = 30
THROTTLE_WINDOW_SECONDS = 15 * 60
_PURGE_EVERY_SECONDS = 60.0

# KEYS[1] the counter; ARGV limit, window seconds. Returns the count after this attempt, or
# minus the seconds left in the window when the counter is at its limit (nothing counted then).
# One key per script: one slot, on a cluster too.
_RESERVE = Script("""
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
    local ttl = redis.call('TTL', KEYS[1])
    if ttl == -1 then
        redis.call('EXPIRE', KEYS[1], ARGV[2])
        ttl = tonumber(ARGV[2])
    end
    if ttl < 1 then ttl = 1 end
    return -ttl
end
redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return count + 1
""", name="login-reserve")

# Give one reservation back; DECR keeps the window's TTL, and a lapsed counter stays gone.
_RELEASE = Script("""
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return count
""", name="login-release")


class _Counter(Record):
    """One counter: its key (a hash, so usernames and addresses stay out of Redis) and limit."""

    key: str
    limit: int


def _counter(kind: str, value: str, limit: int) -> _Counter:
    # The same keys as before the atomic counters, so a deploy keeps the windows in progress.
    return _Counter(key=f"cj:login:fail:{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:32], limit=limit)


class _RedisCounters:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    async def _run(self, script: Script, key: str, *args: object) -> int:
        return int(await script.run(self.redis, [key], args))

    async def reserve(self, counter: _Counter) -> int | None:
        """None when counted; the seconds to wait when the counter is at its limit."""
        answer = await self._run(_RESERVE, counter.key, counter.limit, THROTTLE_WINDOW_SECONDS)
        return -answer if answer < 0 else None

    async def release(self, counter: _Counter) -> None:
        try:
            await self._run(_RELEASE, counter.key)
        except RedisError:
            log.warning("login throttle: a reservation could not be given back; it lapses with its window")

    async def clear(self, counter: _Counter) -> None:
        try:
            await self.redis.delete(counter.key)
        except RedisError:
            log.warning("login throttle: a counter could not be cleared; it lapses with its window")


class _PostgresCounters:
    """The same counters in `login_attempts`; `conn` must not be inside a transaction that a
    failed login rolls back, or the count would go with it."""

    _next_purge = 0.0  # per process: lapsed rows are deleted at most once a minute

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def reserve(self, counter: _Counter) -> int | None:
        if time.monotonic() >= _PostgresCounters._next_purge:
            _PostgresCounters._next_purge = time.monotonic() + _PURGE_EVERY_SECONDS
            await db.delete_lapsed_login_counters(self.conn)
        counted = await db.reserve_login_attempt(
            self.conn, counter=counter.key, limit=counter.limit, window_seconds=THROTTLE_WINDOW_SECONDS
        )
        return None if counted is not None else await db.login_window_left(self.conn, counter.key)

    async def release(self, counter: _Counter) -> None:
        await db.release_login_attempt(self.conn, counter.key)

    async def clear(self, counter: _Counter) -> None:
        await db.clear_login_counter(self.conn, counter.key)


class LoginAttempt:
    """A counted attempt. A failure needs no call (the reservation is the failure's count)."""

    def __init__(self, store: _RedisCounters | _PostgresCounters, user: _Counter, client: _Counter) -> None:
        self._store, self._user, self._client = store, user, client

    async def succeeded(self) -> None:
        """The password held: clear the username's failures, give the client its attempt back."""
        await self._store.clear(self._user)
        await self._store.release(self._client)


async def _reserve_both(store: _RedisCounters | _PostgresCounters, user: _Counter, client: _Counter) -> None:
    wait = await store.reserve(user)
    if wait is None:
        wait = await store.reserve(client)
        if wait is not None:
            await store.release(user)
    if wait is not None:
        raise LoginThrottled(retry_after=wait)


async def reserve_login(
    conn: asyncpg.Connection, redis: RedisClient, *, username: str, client: str
) -> LoginAttempt:
    """Count one login attempt before its password is checked; LoginThrottled (nothing counted)
    when the username or the client address is at its limit.

    In Redis; in PostgreSQL over `conn` (outside any transaction) while Redis does not answer.
    """
    user = _counter("user", username, USER_FAILURE_LIMIT)
    address = _counter("client", client, CLIENT_FAILURE_LIMIT)
    store: _RedisCounters | _PostgresCounters = _RedisCounters(redis)
    try:
        await _reserve_both(store, user, address)
    except (RedisError, OSError) as exc:
        # A reservation Redis took before it failed stays there: it can only over-count.
        log.warning("login throttle: redis unavailable, counting in postgresql",
                    extra={"fields": {"error": type(exc).__name__}})
        store = _PostgresCounters(conn)
        await _reserve_both(store, user, address)
    return LoginAttempt(store, user, address)
