"""Sessions: a short access JWT plus an opaque, rotating refresh token stored hashed in PostgreSQL.

A refresh token is used once: refreshing marks it rotated and issues a successor in the same
family. Presenting a rotated token again means it was copied, so the whole family is revoked
(RFC 9700 §4.14.2) and every holder must log in again.

The family is the session: every veteran, staff and admin access token names it (claim `sid`),
and the auth middleware asks `check_session` on every request, through an `identity.gate`
marker per session (`cj:session:{<family>}:state`). Whatever ends a session — logout, a
disabled account, a changed role, a suspended merchant, a reused refresh token — revokes the
family in PostgreSQL and publishes the refusal to Redis in the same step, so its access tokens
stop on every worker within a second, with Redis or without it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import redis.asyncio as aioredis

from identity import db
from identity.errors import InvalidRefreshToken
from identity.gate import REFUSED, StateGate, active
from identity.keys import KeyRing
from identity.tokens import issue_access_token
from identity.types import Principal, SessionTokens

__all__ = (
    "ACCESS_TTL_SECONDS",
    "IDLE_TIMEOUT",
    "REFRESH_TTL",
    "SESSION_KINDS",
    "check_session",
    "issue_session",
    "prune_refresh_tokens",
    "refresh_session",
    "revoke_merchant_sessions",
    "revoke_session",
    "revoke_subject_sessions",
    "SESSIONS",
)

SESSION_KINDS = ("veteran", "staff", "admin")
"""The principal kinds whose access tokens belong to a session (devices have their own gate)."""

ACCESS_TTL_SECONDS = 15 * 60
REFRESH_TTL: dict[str, timedelta] = {
    "veteran": timedelta(days=30),
    "staff": timedelta(hours=12),
    "admin": timedelta(hours=8),
    "device": timedelta(days=1),
}
IDLE_TIMEOUT: dict[str, timedelta] = {"staff": timedelta(minutes=30), "admin": timedelta(minutes=30)}
"""等保 level 3 (身份鉴别 b, timeout): a staff or admin session whose refresh token went unused this
long is over, even inside its REFRESH_TTL. The console refreshes before each 15-minute access
token expires while it is open and ends the session itself after 15 idle minutes
(api/static/faces/console.js); this is the server's bound for a client that just went away."""
_REFRESH_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")


def _hash(raw: str) -> bytes:
    # 256 random bits need no salt or slow hash; SHA-256 keeps the database useless to a thief.
    return hashlib.sha256(raw.encode()).digest()


def _new_refresh_token() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def _now(now: float | None) -> datetime:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC)


async def _session_state(conn: asyncpg.Connection, family_id: uuid.UUID) -> str:
    return REFUSED if await db.session_refused(conn, family_id) else active()


SESSIONS = StateGate("session", _session_state, unavailable="The session's status cannot be checked right now")
"""This process's session gate (a cache of PostgreSQL's and Redis's answer; see identity.gate)."""


async def _issue(
    conn: asyncpg.Connection, principal: Principal, family_id: uuid.UUID, ring: KeyRing, now: float | None
) -> SessionTokens:
    issued = _now(now)
    raw = _new_refresh_token()
    principal = msgspec.structs.replace(principal, session_id=family_id)
    await db.create_refresh_token(
        conn,
        token_hash=_hash(raw),
        family_id=family_id,
        subject=principal.subject,
        principal=msgspec.to_builtins(principal),
        issued_at=issued,
        expires_at=issued + REFRESH_TTL[principal.kind],
    )
    access = issue_access_token(principal, ttl_seconds=ACCESS_TTL_SECONDS, keyring=ring, now=issued.timestamp())
    return SessionTokens(access_token=access, refresh_token=raw, expires_in=ACCESS_TTL_SECONDS)


async def issue_session(
    conn: asyncpg.Connection, principal: Principal, *, keyring: KeyRing, now: float | None = None
) -> SessionTokens:
    """A new session (new refresh family) for an authenticated principal."""
    return await _issue(conn, principal, uuid.uuid4(), keyring, now)


async def refresh_session(
    conn: asyncpg.Connection,
    raw: str,
    *,
    keyring: KeyRing,
    redis: aioredis.Redis | None = None,
    now: float | None = None,
) -> SessionTokens:
    """Rotate a refresh token into a new session; InvalidRefreshToken for anything else.

    `conn` must not be inside a transaction: when reuse is detected the family revocation is
    committed before the error is raised (a rolled-back revocation would protect nobody). With
    `redis`, the revoked family's access tokens are refused on every worker at once too.
    """
    if not isinstance(raw, str) or not _REFRESH_FORMAT.fullmatch(raw):
        raise InvalidRefreshToken("malformed refresh token")
    at = _now(now)
    async with conn.transaction():
        row = await db.lock_refresh_token(conn, _hash(raw))
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= at:
            raise InvalidRefreshToken("unknown, revoked or expired refresh token")
        principal = await _current_principal(conn, msgspec.convert(row["principal"], Principal))
        idle = IDLE_TIMEOUT.get(principal.kind) if principal is not None else None
        if idle is not None and row["rotated_at"] is None and at - row["issued_at"] > idle:
            principal = None  # idle too long: the session ends as a disabled account's would
        if row["rotated_at"] is None and principal is not None:
            await db.mark_refresh_token_rotated(conn, row["token_hash"], at)
            return await _issue(conn, principal, row["family_id"], keyring, now)
        if redis is not None:
            await SESSIONS.publish_refused(redis, [row["family_id"]])
        await db.revoke_refresh_family(conn, row["family_id"], at)
    # Committed above: the revocation stands even though this request fails.
    raise InvalidRefreshToken("refresh token reused or account disabled; family revoked")


async def _current_principal(conn: asyncpg.Connection, issued: Principal) -> Principal | None:
    """The principal as it is now, or None if it may no longer have a session.

    Staff and admins are re-read from their account, so a disabled account loses its session
    and a changed role or district takes effect at the next refresh, not after the family
    expires. Veterans' sessions end by revocation only (logout, a suspended card); devices
    have no refresh tokens (merchants.devicegate).
    """
    if issued.kind not in ("staff", "admin"):
        return issued
    account = await db.get_account(conn, issued.subject)
    if account is None or account["disabled_at"] is not None or account["kind"] != issued.kind:
        return None
    return account_principal(account)


def account_principal(account: asyncpg.Record) -> Principal:
    """The Principal of a staff or admin account row."""
    if account["kind"] == "admin":
        return Principal(kind="admin", subject=account["id"], role=account["role"], district=account["district"])
    return Principal(kind="staff", subject=account["id"], role=account["role"], merchant_id=account["merchant_id"])


async def revoke_session(
    conn: asyncpg.Connection, raw: str, *, redis: aioredis.Redis, now: float | None = None
) -> None:
    """Logout: revoke the family of this refresh token, and with it the session's access tokens.

    Unknown tokens are ignored (no oracle).
    """
    if not isinstance(raw, str) or not _REFRESH_FORMAT.fullmatch(raw):
        return
    family = await db.get_refresh_family(conn, _hash(raw))
    if family is not None:
        await SESSIONS.publish_refused(redis, [family])
        await db.revoke_refresh_family(conn, family, _now(now))


async def revoke_subject_sessions(
    conn: asyncpg.Connection, subject: uuid.UUID, *, redis: aioredis.Redis | None, now: float | None = None
) -> int:
    """End every session of a person or account (disabled, role changed); how many ended.

    With `redis` the refusal reaches every worker at once; without it (the roster import, which
    has no Redis) the sessions' access tokens are refused once their active markers expire
    (`identity.gate.ACTIVE_TTL`), and their refresh tokens at once.
    """
    families = await db.revoke_refresh_subject(conn, subject, _now(now))
    if redis is not None:
        await SESSIONS.publish_refused(redis, families)
    return len(families)


async def revoke_merchant_sessions(
    conn: asyncpg.Connection, merchant_id: uuid.UUID, *, redis: aioredis.Redis, now: float | None = None
) -> int:
    """End every session of the merchant's staff (the merchant was suspended or closed)."""
    families = await db.revoke_refresh_merchant_staff(conn, merchant_id, _now(now))
    await SESSIONS.publish_refused(redis, families)
    return len(families)


async def check_session(principal: Principal, *, pool: asyncpg.Pool, redis: aioredis.Redis) -> bool:
    """Whether the session of this access token is still open (the per-request check).

    A veteran, staff or admin token without a session (issued by an older release) is refused:
    the client refreshes or logs in again.
    """
    if principal.session_id is None:
        return False
    return await SESSIONS.state(principal.session_id, pool=pool, redis=redis) != REFUSED


async def prune_refresh_tokens(conn: asyncpg.Connection, *, expired_for: timedelta, batch: int = 10_000) -> int:
    """Delete refresh tokens expired for longer than `expired_for` (at least a day: a reused,
    already expired token is refused either way, so nothing is lost). Batches commit one by one."""
    if expired_for < timedelta(days=1):
        raise ValueError("keep expired refresh tokens for at least a day")
    cutoff = datetime.now(UTC) - expired_for
    total = 0
    while (deleted := await db.delete_expired_refresh_tokens(conn, expired_before=cutoff, batch=batch)) > 0:
        total += deleted
    return total
