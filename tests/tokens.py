"""Mint valid access tokens for any principal kind in tests.

With the in-process `client` fixture the app has loaded its key ring (from the test's
database) when the client starts, so:

    headers = auth_headers(app, veteran(person_id))
    await client.get("/v1/me", headers=headers)

For `live_server` tests, `await keyring_for(settings)` loads the same ring the server uses.
"""

from __future__ import annotations

import uuid
from uuid import UUID

import msgspec

from foundation.settings import Settings
from identity import (
    SESSION_KINDS,
    KeyRing,
    Principal,
    SecretStore,
    ensure_signing_keys,
    issue_access_token,
    profile_algorithm,
)
from tests.support import init_connection

__all__ = ("access_token", "admin", "auth_headers", "device", "keyring_for", "staff", "veteran")


def veteran(person_id: UUID | None = None) -> Principal:
    return Principal(kind="veteran", subject=person_id or uuid.uuid4())


def staff(merchant_id: UUID | None = None, *, account_id: UUID | None = None, role: str | None = None) -> Principal:
    return Principal(kind="staff", subject=account_id or uuid.uuid4(), role=role, merchant_id=merchant_id or uuid.uuid4())


def admin(role: str = "city", *, district: str | None = None, account_id: UUID | None = None) -> Principal:
    if role == "district" and district is None:
        district = "310115"
    return Principal(kind="admin", subject=account_id or uuid.uuid4(), role=role, district=district)


def device(
    merchant_id: UUID | None = None,
    venue_id: UUID | None = None,
    *,
    device_id: UUID | None = None,
    secret_generation: int = 1,
) -> Principal:
    """A device token's principal; a device provisioned and never rolled is at generation 1."""
    return Principal(
        kind="device",
        subject=device_id or uuid.uuid4(),
        merchant_id=merchant_id or uuid.uuid4(),
        venue_id=venue_id or uuid.uuid4(),
        secret_generation=secret_generation,
    )


def _ring(source) -> KeyRing:
    if isinstance(source, KeyRing):
        return source
    ring = getattr(source.state, "keyring", None)
    if ring is None or not ring.is_loaded:
        raise RuntimeError("the app's key ring is not loaded: start the app first (use the `client` fixture)")
    return ring


def access_token(source, principal: Principal, *, ttl_seconds: int = 900, now: float | None = None) -> str:
    """A valid bearer token for `principal`; `source` is the app (started) or a KeyRing.

    A veteran, staff or admin token names a session (`sid`): without one in `principal`, a made-up
    session is named, which is open until something revokes it (identity.sessions). Tests of
    revocation log in for real instead.
    """
    if principal.kind in SESSION_KINDS and principal.session_id is None:
        principal = msgspec.structs.replace(principal, session_id=uuid.uuid4())
    return issue_access_token(principal, ttl_seconds=ttl_seconds, keyring=_ring(source), now=now)


def auth_headers(source, principal: Principal, **kwargs) -> dict[str, str]:
    return {"Authorization": "Bearer " + access_token(source, principal, **kwargs)}


async def keyring_for(settings: Settings) -> KeyRing:
    """The key ring of the test database (created if the app has not started yet)."""
    import asyncpg

    ring = KeyRing(SecretStore.from_settings(settings))
    conn = await asyncpg.connect(settings.database_url)
    try:
        await init_connection(conn)
        await ensure_signing_keys(conn, ring.secrets, create=True, alg=profile_algorithm(settings.crypto_profile))
        await ring.load(conn)
    finally:
        await conn.close()
    return ring
