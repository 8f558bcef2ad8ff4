"""Who is calling: bearer access tokens become `request.user` (an `identity.Principal`).

The middleware verifies `Authorization: Bearer <jwt>` for every token kind against the
in-memory key ring (no database or Redis round trip). A request without the header passes with
`request.user = None` and the route's guard decides (401 on a protected route); a request with
a bad token is refused with the one `invalid-token` 401, whatever was wrong with it. Public
operational paths and routes with `opt={"exclude_from_auth": True}` (login, refresh, the public
catalog) skip the middleware entirely, so a stale token sent there does no harm.

Lifecycle checks: after the signature, every token is checked against the current state of what
it stands for, on every request: `app.state.principal_checks[kind]` is an async `(principal,
state) -> bool` (built by the app factory, `principal_checks`), and False refuses the token as
invalid although it has not expired. Devices are checked by the merchants package (revoked,
venue or merchant not active, secret rolled); veterans, staff and admins by their session
(`identity.check_session`: logged out, account disabled, role changed, merchant suspended or
closed). A kind without a check is refused: a new kind cannot skip revocation by omission.
Each check costs an in-process answer at most a second old or one Redis GET (identity.gate).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware

import identity
from identity import InvalidToken, KeyRing, Principal, SecretStore

from api.lifespan import in_background

__all__ = (
    "PUBLIC_PATHS",
    "BearerTokenMiddleware",
    "PrincipalCheck",
    "auth_middleware",
    "keyring_lifespan",
    "session_check",
)

log = logging.getLogger("chongjun.auth")

PrincipalCheck = Callable[[Principal, State], Awaitable[bool]]
"""Per principal kind, the liveness check run on every authenticated request of that kind."""


async def session_check(principal: Principal, state: State) -> bool:
    """The check of veteran, staff and admin tokens: is the token's session still open?"""
    return await identity.check_session(principal, pool=state.pool, redis=state.redis)

PUBLIC_PATHS = [r"^/health$", r"^/ready$", r"^/metrics$", r"^/schema", r"^/\.well-known/", r"^/dev-city/"]

KEYRING_REFRESH_SECONDS = 30.0
"""How often every worker reloads the key ring; a rotation reaches all workers within this."""
KEYRING_RETRY_SECONDS = 1.0


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if header is None:
            return AuthenticationResult(user=None, auth=None)
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("not a bearer token")
            principal = identity.verify_access_token(token.strip(), keyring=connection.app.state.keyring)
            state = connection.app.state
            check = state.principal_checks.get(principal.kind)
            if check is None or not await check(principal, state):
                raise InvalidToken("principal is no longer active")
        except InvalidToken as exc:
            # The reason stays in the server log; the client sees one uniform answer.
            log.info("bearer token refused", extra={"fields": {"reason": exc.reason}})
            raise
        return AuthenticationResult(user=principal, auth=None)


auth_middleware = DefineMiddleware(BearerTokenMiddleware, exclude=PUBLIC_PATHS)


async def _load(app: Litestar, ring: KeyRing) -> None:
    settings = app.state.settings
    async with app.state.pool.acquire() as conn:
        active = await identity.ensure_signing_keys(
            conn, ring.secrets, create=not settings.is_production,
            alg=identity.profile_algorithm(settings.crypto_profile),
        )
        if active is None:
            raise RuntimeError("no active signing key: run `chongjun keys rotate` once before serving")
        await ring.load(conn)


async def _keep_fresh(app: Litestar, ring: KeyRing) -> None:
    while True:
        await asyncio.sleep(KEYRING_REFRESH_SECONDS if ring.is_loaded else KEYRING_RETRY_SECONDS)
        try:
            await _load(app, ring)
        except Exception as exc:  # keep serving with the ring we have; say why in the log
            log.warning("key ring reload failed: %s", type(exc).__name__)


@asynccontextmanager
async def keyring_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Load the key ring at start (creating a first key in dev) and keep it fresh.

    A database that is down at start does not stop the app (/ready reports it); the ring loads
    as soon as PostgreSQL answers. Missing secrets in production do stop it.
    """
    settings = app.state.settings
    ring = KeyRing(SecretStore.from_settings(settings))
    ring.subject_key  # read the secrets now: production without them must not start  # noqa: B018
    app.state.keyring = ring
    try:
        await _load(app, ring)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("key ring not loaded at start (%s); retrying in the background", type(exc).__name__)
    async with in_background(_keep_fresh(app, ring)):
        yield
