"""One entry point for whatever a merchant device scans: a 崇军码 or a 随申码.

The dispatcher looks only at the prefix; each branch does its own full verification. Any input
that matches no branch is the same InvalidCode as a forgery.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
import redis.asyncio as aioredis

from identity.city import current_city_providers
from identity.codes import CODE_PREFIX, verify_code
from identity.errors import InvalidCode
from identity.suishen import resolve_suishen_scan
from identity.types import ScannedHolder

__all__ = ("MAX_SCAN_LENGTH", "resolve_scan_code")

MAX_SCAN_LENGTH = 4096
"""Longest raw scan any branch accepts; each branch applies its own tighter cap."""


async def resolve_scan_code(
    raw: object,
    *,
    redis: aioredis.Redis,
    conn: asyncpg.Connection | None = None,
    now: datetime | float | None = None,
) -> ScannedHolder:
    """The holder behind a scanned code; InvalidCode (forged, unknown) or ExpiredCode.

    A 随申码 (`SSM1:` from the dev simulator, anything else from the city platform when one is
    configured) needs `conn`, to find the citizen in the roster by the blind index of their ID
    number: NotEnrolled when they are not there. CityPlatformUnavailable (503) when the platform
    fails: the scan is refused, never accepted on a guess.

    `now` (a datetime or a POSIX timestamp) replaces the clock in tests. Single use of the `jti`
    is not checked here: the redemption ledger enforces it in PostgreSQL (`consumed_codes`).
    """
    if not isinstance(raw, str) or len(raw) > MAX_SCAN_LENGTH:
        raise InvalidCode("not a scan code")
    clock = now.timestamp() if isinstance(now, datetime) else now
    if raw.startswith(CODE_PREFIX):
        verified = verify_code(raw, now=clock)
        return ScannedHolder(
            person_id=verified.person_id,
            jti=verified.jti,
            expires_at=verified.expires_at,
            source="cj_code",
            benefit_id=verified.benefit_id,
        )
    providers = current_city_providers()
    if providers.provider_for(raw) is None:
        raise InvalidCode("unknown code prefix")
    if conn is None:
        raise TypeError("resolve_scan_code needs `conn` to resolve a 随申码")
    return await resolve_suishen_scan(raw, conn=conn, providers=providers, now=clock)
