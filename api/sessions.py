"""Staff/admin login, refresh and logout (the veteran login is in the people controllers).

Staff of a merchant that is not active get 403 `merchant-inactive` at login (after the password held).
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

import identity
import merchants
from api.guards import PublicRoutes
from identity import KeyRing, LogoutRequest, RefreshRequest, SessionTokens, StaffLogin


class SessionController(PublicRoutes):
    path = "/v1/auth"
    tags = ["auth"]

    @post("/staff", operation_id="StaffLogin", status_code=HTTP_200_OK, summary="Staff or admin login")
    async def staff_login(
        self,
        request: Request,
        data: JSONBody[StaffLogin],
        plain_conn: NamedDependency[asyncpg.Connection],
        redis: NamedDependency[aioredis.Redis],
        keyring: NamedDependency[KeyRing],
    ) -> SessionTokens:
        # No request transaction: the throttle's count of a failed attempt must outlive its 401.
        client = request.client.host if request.client else "unknown"
        return await identity.staff_login(
            plain_conn, redis, data, client=client, keyring=keyring, admit=merchants.admit_staff
        )

    @post("/refresh", operation_id="RefreshSession", status_code=HTTP_200_OK, summary="Rotate a refresh token")
    async def refresh(
        self,
        data: JSONBody[RefreshRequest],
        plain_conn: NamedDependency[asyncpg.Connection],
        keyring: NamedDependency[KeyRing],
        redis: NamedDependency[aioredis.Redis],
    ) -> SessionTokens:
        return await identity.refresh_session(plain_conn, data.refresh_token, keyring=keyring, redis=redis)

    @post(
        "/logout", operation_id="Logout", status_code=HTTP_204_NO_CONTENT,
        summary="End the session: its refresh token family and its access tokens",
    )
    async def logout(
        self,
        data: JSONBody[LogoutRequest],
        conn: NamedDependency[asyncpg.Connection],
        redis: NamedDependency[aioredis.Redis],
    ) -> None:
        await identity.revoke_session(conn, data.refresh_token, redis=redis)
