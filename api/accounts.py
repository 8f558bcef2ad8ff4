"""Admin accounts over HTTP: the security administrator's routes (三员分立).

`/v1/admin/accounts` lists, creates and changes admin accounts; only the security duty enters
(the guard, and `identity.require_security` again in the service). The role of a new account
names its duty; its password is an initial one, which its holder replaces at
`POST /v1/auth/password` before the first login.
"""

from __future__ import annotations

from uuid import UUID

from litestar import get, patch, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

import identity
from api.deps import AppSettings, Conn, CurrentPrincipal, Keyring, Redis
from api.guards import AdminRoutes, requires_admin_role
from api.paging import Page, Paging
from identity import AccountRecord, AdminAccountCreate, AdminAccountUpdate, CreatedAdminAccount

__all__ = ("AdminAccountController",)


class AdminAccountController(AdminRoutes):
    path = "/v1/admin/accounts"
    tags = ["admin: accounts"]
    guards = [requires_admin_role(*identity.roles_of_duty("security"))]

    @get("/", operation_id="AdminListAccounts", summary="Admin accounts with their duty (security administrator; paged)")
    async def list_accounts(
        self, conn: Conn, principal: CurrentPrincipal, paging: Paging
    ) -> Page[AccountRecord]:
        return await identity.list_admin_accounts(conn, principal, limit=paging.limit, cursor=paging.cursor)

    @post(
        "/", operation_id="AdminCreateAccount", status_code=HTTP_201_CREATED,
        summary="Create an admin account; its role names its one duty; the password is an initial one",
    )
    async def create_account(
        self, data: JSONBody[AdminAccountCreate], conn: Conn, principal: CurrentPrincipal, keyring: Keyring,
        settings: AppSettings,
    ) -> CreatedAdminAccount:
        return await identity.create_admin_account(
            conn, principal, data, secrets=keyring.secrets, require_admin_totp=settings.admin_totp_required
        )

    @get("/{account_id:uuid}", operation_id="AdminGetAccount", summary="One admin account")
    async def get_account(self, account_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal) -> AccountRecord:
        return await identity.get_admin_account(conn, principal, account_id)

    @patch(
        "/{account_id:uuid}", operation_id="AdminUpdateAccount",
        summary="Disable or enable, move within its duty (city <-> district), or reset the password (an initial one again)",
    )
    async def update_account(
        self, account_id: FromPath[UUID], data: JSONBody[AdminAccountUpdate], conn: Conn,
        principal: CurrentPrincipal, redis: Redis,
    ) -> AccountRecord:
        return await identity.update_admin_account(conn, principal, account_id, data, redis=redis)
