"""One entry point for whatever a merchant device scans: a 崇军码 or a 随申码.

The dispatcher looks only at the prefix; each branch does its own full verification. Any input
that matches no branch is the same InvalidCode as a forgery.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from identity.codes import CODE_PREFIX, verify_code
from identity.errors import InvalidCode
from identity.types import ScannedHolder

__all__ = ("MAX_SCAN_LENGTH", "resolve_scan_code")

MAX_SCAN_LENGTH = 4096
"""Longest raw scan any branch accepts; each branch applies its own tighter cap."""


async def resolve_scan_code(raw: object, *, redis: aioredis.Redis, now: datetime | float | None = None) -> ScannedHolder:
    """The holder behind a scanned code; InvalidCode (forged, unknown) or ExpiredCode.

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
    # The 随申码 branch (`SSM1:` from the dev simulator, or the production provider) goes here.
    raise InvalidCode("unknown code prefix")
