"""Staff/admin login, refresh and logout (the veteran login is in the people controllers).

Staff of a merchant that is not active get 403 `merchant-inactive` at login (after the password held).
An account whose password an admin set gets 403 `password-change-required` at login (after the
password held) and sets its own at `POST /v1/auth/password`; where TOTP is required for admins
(production), an admin without it gets 403 `totp-enrollment-required`.
"""

from __future__ import annotations

from litestar import Request, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

import identity
import merchants
from api.deps import AppSettings, Conn, Keyring, PlainConn, Redis
from api.guards import PublicRoutes
from identity import LogoutRequest, PasswordChange, RefreshRequest, SessionTokens, StaffLogin


def _client(request: Request) -> str:
    """The caller's address for the login throttle (behind our proxies, the one they name: api/asgi.py)."""
    return request.client.host if request.client else "unknown"


class SessionController(PublicRoutes):
    path = "/v1/auth"
    tags = ["auth"]

    @post("/staff", operation_id="StaffLogin", status_code=HTTP_200_OK, summary="Staff or admin login")
    async def staff_login(
        self, request: Request, data: JSONBody[StaffLogin], plain_conn: PlainConn, redis: Redis, keyring: Keyring,
        settings: AppSettings,
    ) -> SessionTokens:
        # No request transaction: the throttle's count of a failed attempt must outlive its 401.
        return await identity.staff_login(
            plain_conn, redis, data, client=_client(request), keyring=keyring, admit=merchants.admit_staff,
            require_admin_totp=settings.admin_totp_required,
        )

    @post(
        "/password", operation_id="ChangePassword", status_code=HTTP_204_NO_CONTENT,
        summary="Replace one's password (the initial one, before the first login): current password and TOTP, then the new one",
    )
    async def change_password(
        self, request: Request, data: JSONBody[PasswordChange], plain_conn: PlainConn, redis: Redis, keyring: Keyring,
        settings: AppSettings,
    ) -> None:
        # As at login: the throttle's count of a failed attempt must outlive its 401.
        await identity.change_password(
            plain_conn, redis, data, client=_client(request), secrets=keyring.secrets,
            require_admin_totp=settings.admin_totp_required,
        )

    @post("/refresh", operation_id="RefreshSession", status_code=HTTP_200_OK, summary="Rotate a refresh token")
    async def refresh(
        self, data: JSONBody[RefreshRequest], plain_conn: PlainConn, keyring: Keyring, redis: Redis
    ) -> SessionTokens:
        return await identity.refresh_session(plain_conn, data.refresh_token, keyring=keyring, redis=redis)

    @post(
        "/logout", operation_id="Logout", status_code=HTTP_204_NO_CONTENT,
        summary="End the session: its refresh token family and its access tokens",
    )
    async def logout(
        self, data: JSONBody[LogoutRequest], conn: Conn, redis: Redis
    ) -> None:
        await identity.revoke_session(conn, data.refresh_token, redis=redis)
