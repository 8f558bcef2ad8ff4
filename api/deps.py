"""Dependencies every controller may ask for."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import redis.asyncio as aioredis
from litestar.datastructures import State

from foundation.settings import Settings
from identity import KeyRing

__all__ = ("provide_conn", "provide_keyring", "provide_plain_conn", "provide_redis", "provide_settings")


async def provide_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    """One connection and one transaction per request.

    A handler error is thrown in at the `yield` and rolls back; a normal return commits before
    the response is sent (Litestar runs dependency clean-up first), so a failed commit becomes an
    error response and never a silent loss.
    """
    async with state.pool.acquire() as conn, conn.transaction():
        yield conn


def provide_redis(state: State) -> aioredis.Redis:
    return state.redis


def provide_settings(state: State) -> Settings:
    return state.settings


async def provide_plain_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    """A connection with no surrounding transaction, for services that must commit part of their
    work even when they then refuse the request (e.g. revoking a reused refresh-token family)."""
    async with state.pool.acquire() as conn:
        yield conn


def provide_keyring(state: State) -> KeyRing:
    return state.keyring
