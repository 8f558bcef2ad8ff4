"""随申码 at login: verify with the city provider, refuse a replay, find the person by blind index.

At the gate the same verification runs in `identity.scan.verify_scan_code`."""

from __future__ import annotations

import hashlib
import logging
import time

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from foundation.errors import Unavailable
from identity.city import CityProviders
from identity.errors import ExpiredCode, InvalidCode
from identity.keys import KeyRing
from identity.people.service import enrolled_person_id, get_profile
from identity.people.types import SuishenSession
from identity.sessions import issue_session
from identity.types import Principal

__all__ = ("LoginReplayUnavailable", "suishen_login")

log = logging.getLogger("chongjun.identity")

_REPLAY_LEEWAY_SECONDS = 30


class LoginReplayUnavailable(Unavailable):
    """Redis (the login replay window) is down: refuse rather than let a code be used twice."""

    type = "unavailable"
    title = "Service unavailable"


def _replay_key(jti: str) -> str:
    return "cj:ssm:login:" + hashlib.sha256(jti.encode()).hexdigest()[:32]


async def suishen_login(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    code: str,
    *,
    providers: CityProviders,
    keyring: KeyRing,
    now: float | None = None,
) -> SuishenSession:
    """A veteran session for a 随申码.

    Every bad code (forged, tampered, garbage, replayed) is the one InvalidCode 401, so the
    answers cannot be told apart; the reason goes to the log. A genuine code past its expiry is
    ExpiredCode (401 `expired-code`): the provider says so only after the signature verified. A
    genuine code of someone not in the roster is NotEnrolled (403); a suspended or revoked card
    is CardSuspended (403).
    """
    try:
        holder = await providers.verify(code, now=now)
    except ExpiredCode:
        # Raised only once the signature held, so it is no forgery oracle: the app can ask for
        # a fresh code instead of saying the code is bad.
        log.info("suishen login refused", extra={"fields": {"reason": "expired"}})
        raise
    except InvalidCode as exc:
        log.info("suishen login refused", extra={"fields": {"reason": exc.reason}})
        raise
    clock = time.time() if now is None else now
    ttl = max(int(holder.expires_at.timestamp() - clock) + _REPLAY_LEEWAY_SECONDS, 1)
    try:
        first = await redis.set(_replay_key(holder.jti), b"1", nx=True, ex=ttl)
    except (RedisError, OSError) as exc:
        log.warning("suishen login replay check failed", extra={"fields": {"error": type(exc).__name__}})
        raise LoginReplayUnavailable() from None
    if not first:
        log.info("suishen login refused", extra={"fields": {"reason": "replayed"}})
        raise InvalidCode("replayed")
    person_id = await enrolled_person_id(conn, holder.id_hmac, alt=holder.id_hmac_alt)
    tokens = await issue_session(conn, Principal(kind="veteran", subject=person_id), keyring=keyring)
    return SuishenSession(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_type=tokens.token_type,
        expires_in=tokens.expires_in,
        person=await get_profile(conn, person_id),
    )
