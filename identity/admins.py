"""The security administrator's work (三员分立): admin accounts, their roles and so their duties.

Only an admin holding the security duty may list, create, change or reset admin accounts
(`require_security`); a system administrator (city, district) or the audit administrator gets
`WrongPrincipal` (403), whatever the route. Every change is archived (`account.create`,
`admin.duty.assign`, `account.role.change`, `account.disable`/`enable`, `account.password.reset`)
with the security administrator as the actor. A role changes within its duty only (city <->
district; the database refuses more, migration 0051). Signing keys are the security duty's too,
but they are rotated by the operator on the host (`chongjun keys rotate`), never over HTTP.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from foundation.paging import Page, decode_cursor, fetch_size, page_of
from identity import db
from identity.accounts import audit_account, account_record, create_account, reset_password, set_account_disabled
from identity.duties import AccountNotFound, DutyConflict, duty_of_role
from identity.errors import InvalidAccount, WrongPrincipal
from identity.secrets import SecretStore
from identity.sessions import revoke_subject_sessions
from identity.types import (
    AccountRecord,
    AdminAccountCreate,
    AdminAccountUpdate,
    CreatedAdminAccount,
    NewAccount,
    Principal,
)

__all__ = (
    "create_admin_account",
    "get_admin_account",
    "list_admin_accounts",
    "require_security",
    "update_admin_account",
)


def require_security(caller: Principal) -> None:
    """The caller holds the security duty (a `security` admin), or WrongPrincipal."""
    if caller.kind != "admin" or duty_of_role(caller.role) != "security":
        raise WrongPrincipal("Admin accounts are managed by the security administrator only (三员分立)")


async def list_admin_accounts(
    conn: asyncpg.Connection, caller: Principal, *, limit: int, cursor: str | None
) -> Page[AccountRecord]:
    require_security(caller)
    rows = await db.list_admin_accounts(conn, after=decode_cursor(cursor), limit=fetch_size(limit))
    return page_of(rows, limit, account_record)


async def _admin_row(conn: asyncpg.Connection, account_id: UUID) -> asyncpg.Record:
    row = await db.get_account(conn, account_id)
    if row is None or row["kind"] != "admin":
        raise AccountNotFound()
    return row


async def get_admin_account(conn: asyncpg.Connection, caller: Principal, account_id: UUID) -> AccountRecord:
    require_security(caller)
    return account_record(await _admin_row(conn, account_id))


async def create_admin_account(
    conn: asyncpg.Connection, caller: Principal, data: AdminAccountCreate, *, secrets: SecretStore,
    require_admin_totp: bool,
) -> CreatedAdminAccount:
    """A new admin account with the duty of its role; its password is an initial one."""
    require_security(caller)
    new = NewAccount(
        kind="admin", username=data.username, password=data.password, role=data.role, district=data.district,
        with_totp=data.with_totp,
    )
    record, uri = await create_account(conn, new, secrets=secrets, actor=caller, require_admin_totp=require_admin_totp)
    return CreatedAdminAccount(account=record, totp_uri=uri)


async def update_admin_account(
    conn: asyncpg.Connection, caller: Principal, account_id: UUID, data: AdminAccountUpdate, *,
    redis: aioredis.Redis,
) -> AccountRecord:
    """Role (within the duty), disabled, or a password reset; each ends the account's sessions."""
    require_security(caller)
    row = await _admin_row(conn, account_id)
    if account_id == caller.subject and (data.disabled or data.role is not None):
        raise InvalidAccount("a security administrator cannot disable or move their own account")
    if data.role is not None or data.district is not None:
        role = data.role if data.role is not None else row["role"]
        district = data.district if role == "district" else None
        if (role == "district") != (district is not None):
            raise InvalidAccount("a district admin needs a district; other admins have none")
        if duty_of_role(role) != duty_of_role(row["role"]):
            raise DutyConflict(f"the account holds the {duty_of_role(row['role'])} duty for its life; a {role} holds the {duty_of_role(role)} duty")
        if (role, district) != (row["role"], row["district"]):
            await db.set_admin_role(conn, account_id, role, district)
            await revoke_subject_sessions(conn, account_id, redis=redis)
            await audit_account(
                conn, caller, "account.role.change", await db.get_account(conn, account_id),
                role=role, previous_role=row["role"],
            )
    if data.password is not None:
        await reset_password(conn, account_id, data.password, actor=caller, redis=redis)
    if data.disabled is not None and data.disabled != (row["disabled_at"] is not None):
        await set_account_disabled(conn, account_id, disabled=data.disabled, redis=redis, actor=caller)
    return account_record(await db.get_account(conn, account_id))

