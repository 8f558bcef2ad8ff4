"""Dependencies every controller may ask for, and the short annotations that ask for them.

A handler names a dependency by its parameter name and marks it with one of the aliases below
(`conn: Conn`, `redis: Redis`, `principal: CurrentPrincipal`); each alias is Litestar's
`NamedDependency[T]`, i.e. `Annotated[T, Dependency(kind="named")]`, so Litestar resolves it by
name and never mistakes it for a query parameter. The providers are registered in `api.app`
(app-wide) or on the controller that owns them (`city`, `pii_vault`, `device_key`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress

import asyncpg
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.client import AbstractRedis

from api.public import count_fallback
from foundation.replica import ReplicaReads
from foundation.connections import RedisClient
from foundation.settings import Settings
from identity import CityProviders, KeyRing, PiiVault, Principal

__all__ = (
    "AppSettings",
    "City",
    "Conn",
    "CurrentPrincipal",
    "DeviceKey",
    "Keyring",
    "PlainConn",
    "ReadConn",
    "Redis",
    "Vault",
    "provide_conn",
    "provide_keyring",
    "provide_plain_conn",
    "provide_read_conn",
    "read_cache_seconds",
    "provide_redis",
    "provide_settings",
)

Conn = NamedDependency[asyncpg.Connection]
"""`conn`: one pooled connection inside the request's transaction (`provide_conn`)."""
PlainConn = NamedDependency[asyncpg.Connection]
"""`plain_conn`: a pooled connection with no surrounding transaction (`provide_plain_conn`)."""
ReadConn = NamedDependency[asyncpg.Connection]
"""`read_conn`: a read-only transaction on the read replica while it is within the staleness bound,
else on the primary (`provide_read_conn`). Only for reads that may be that stale: stats, reports,
ledger lists, a person's history, matching. Never for a write, nor a read a write depends on."""
Redis = NamedDependency[AbstractRedis]
"""`redis`: the worker's Redis client, a `foundation.connections.RedisClient` (a cluster client under
`CHONGJUN_REDIS_CLUSTER=1`). Declared as their common base: Litestar checks an injected value
against its annotation, and msgspec cannot check a union of two classes."""
Keyring = NamedDependency[KeyRing]
"""`keyring`: the worker's token key ring, kept fresh by `api.auth.keyring_lifespan`."""
CurrentPrincipal = NamedDependency[Principal]
"""`principal`: the authenticated caller (`api.guards.provide_principal`; 401 if there is none)."""
AppSettings = NamedDependency[Settings]
"""`settings`: the settings the app was created with."""
City = NamedDependency[CityProviders]
"""`city`: the city identity providers (`api.people`)."""
Vault = NamedDependency[PiiVault]
"""`pii_vault`: the PII vault of roster imports (`api.people`)."""
DeviceKey = NamedDependency[bytes]
"""`device_key`: the HMAC key of device secrets (`api.merchants`)."""
PublicUrl = NamedDependency[str]
"""`public_url`: our address as others must see it, without a trailing slash (`provide_public_url`)."""


async def provide_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    """One connection and one transaction per request.

    A handler error is thrown in at the `yield` and rolls back; a normal return commits before
    the response is sent (Litestar runs dependency clean-up first), so a failed commit becomes an
    error response and never a silent loss.
    """
    async with state.pool.acquire() as conn, conn.transaction():
        yield conn


REPLICA_ACQUIRE_SECONDS = 2.0
"""How long a read waits for a replica connection before it goes to the primary instead."""


async def provide_read_conn(request: Request, state: State) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a read that may be `replica_max_lag_seconds` stale, in a READ ONLY
    transaction (the same on either server: a write there fails on the primary too).

    The replica is used when this worker's last measure says it is within the bound
    (`foundation.replica.ReplicaReads.choose`, no query). Taking the connection and starting the
    transaction is the proof it answers: if either fails (refused, timed out, a connection cut by
    a restart) the replica is marked down and the read goes to the primary, without an error to
    the client. A connection lost after that, mid-handler, is an error for that one request and
    marks the replica down for the next. `request.state.read_behind` says how stale the answer
    may be (None: from the primary), for `read_cache_seconds`.
    """
    reads: ReplicaReads = state.reads
    pool, behind, why = reads.choose()
    request.state.read_behind = None
    if behind is not None:
        replica = AsyncExitStack()
        try:
            conn = await replica.enter_async_context(pool.acquire(timeout=REPLICA_ACQUIRE_SECONDS))
            await replica.enter_async_context(conn.transaction(readonly=True))
        except Exception as exc:
            with suppress(Exception):
                await replica.aclose()
            reads.mark_down(exc)
            why = "down"
        else:
            request.state.read_behind = behind
            try:
                async with replica:
                    yield conn
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                reads.mark_down(exc)
                raise
            return
    if why != "off":
        count_fallback(why)
    async with state.pool.acquire() as conn, conn.transaction(readonly=True):
        yield conn


def read_cache_seconds(request: Request) -> float | None:
    """How long an answer computed on this request's `read_conn` may be kept in a cache that a
    later change does not invalidate for it: None (no limit of ours) when it came from the
    primary; from the replica, what is left of the staleness bound (0: do not cache). A change
    committed just before the read may be missing from the replica although its invalidation
    (a new generation in Redis) was already seen."""
    behind = request.state.read_behind
    if behind is None:
        return None
    return max(0.0, request.app.state.reads.max_lag - behind)


def provide_redis(state: State) -> RedisClient:
    return state.redis


def provide_settings(state: State) -> Settings:
    return state.settings


async def provide_plain_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    """A connection with no surrounding transaction, for services that must commit part of their
    work even when they then refuse the request (e.g. revoking a reused refresh-token family)."""
    async with state.pool.acquire() as conn:
        yield conn


def provide_public_url(request: Request, state: State) -> str:
    """`CHONGJUN_PUBLIC_URL` when set (always in production); in dev, the address the request used.

    What is built from it (a credential's issuer, a status list's URL, a device's setup QR) outlives
    the request, so in production it never comes from a caller's `Host` header."""
    configured = state.settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


def provide_keyring(state: State) -> KeyRing:
    return state.keyring
