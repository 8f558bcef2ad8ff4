"""Dependencies every controller may ask for, and the short annotations that ask for them.

A handler names a dependency by its parameter name and marks it with one of the aliases below
(`conn: Conn`, `redis: Redis`, `principal: CurrentPrincipal`); each alias is Litestar's
`NamedDependency[T]`, i.e. `Annotated[T, Dependency(kind="named")]`, so Litestar resolves it by
name and never mistakes it for a query parameter. The providers are registered in `api.app`
(app-wide) or on the controller that owns them (`city`, `pii_vault`, `device_key`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.client import AbstractRedis

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
    "Redis",
    "Vault",
    "provide_conn",
    "provide_keyring",
    "provide_plain_conn",
    "provide_redis",
    "provide_settings",
)

Conn = NamedDependency[asyncpg.Connection]
"""`conn`: one pooled connection inside the request's transaction (`provide_conn`)."""
PlainConn = NamedDependency[asyncpg.Connection]
"""`plain_conn`: a pooled connection with no surrounding transaction (`provide_plain_conn`)."""
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
