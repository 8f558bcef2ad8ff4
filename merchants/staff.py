"""Staff accounts of a merchant, managed by admins on top of `identity.create_account`.

The `accounts` table is identity's (migration 0010); this module only reads staff rows and
changes their merchant role, always through the merchant they belong to (`merchants.scope`):
a district admin manages the staff of merchants their district onboarded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis

import identity
from foundation.errors import Forbidden
from foundation.paging import Page
from foundation.structs import Input, Record
from merchants import db
from merchants.errors import MerchantInactive, MerchantNotFound, NotActive, StaffNotFound
from merchants.scope import Caller, admin_district, managed_merchant, require_admin_writer, visible_merchant
from merchants.service import audit, keyset_page

__all__ = (
    "CreatedStaff", "StaffAccount", "StaffCreate", "StaffRole", "StaffUpdate",
    "admit_staff", "create_staff", "get_staff", "list_staff", "update_staff",
)

StaffRole = Literal["manager", "clerk"]


class StaffCreate(Input):
    merchant_id: UUID
    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._@-]{1,63}$", examples=["museum.gate1"])]
    password: Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]
    role: StaffRole = "clerk"
    with_totp: bool = False


class StaffUpdate(Input):
    role: StaffRole | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET


class StaffAccount(Record):
    id: UUID
    merchant_id: UUID
    username: str
    role: str | None
    totp_enabled: bool
    disabled: bool
    created_at: datetime


class CreatedStaff(Record):
    account: StaffAccount
    totp_uri: str | None
    """otpauth:// URI with the TOTP secret: shown once, for the account holder's authenticator."""


_MANAGED_BY = "Staff of a merchant are managed by the district that onboarded it"


async def create_staff(
    conn: asyncpg.Connection, caller: Caller, data: StaffCreate, *, secrets: identity.SecretStore
) -> CreatedStaff:
    merchant = await managed_merchant(conn, caller, data.merchant_id, why=_MANAGED_BY)
    if merchant["status"] == "closed":
        raise NotActive("The merchant is closed")
    record, uri = await identity.create_account(
        conn,
        identity.NewAccount(
            kind="staff", username=data.username, password=data.password, role=data.role,
            merchant_id=data.merchant_id, with_totp=data.with_totp,
        ),
        secrets=secrets, actor=caller,
    )
    account = msgspec.convert(await db.get_staff(conn, record.id), StaffAccount)
    await audit(conn, caller, "staff.create", "account", account.id, merchant["district"], merchant_id=str(data.merchant_id), username=account.username, role=data.role)
    return CreatedStaff(account=account, totp_uri=uri)


async def _visible_staff(conn: asyncpg.Connection, caller: Caller, account_id: UUID) -> asyncpg.Record:
    """A staff account is seen by whoever sees its merchant; otherwise the same 404 as a missing one."""
    row = await db.get_staff(conn, account_id)
    if row is None:
        raise StaffNotFound()
    try:
        await visible_merchant(conn, caller, row["merchant_id"])
    except MerchantNotFound:
        raise StaffNotFound() from None
    return row


async def get_staff(conn: asyncpg.Connection, caller: Caller, account_id: UUID) -> StaffAccount:
    if caller.kind != "admin":
        raise Forbidden()
    return msgspec.convert(await _visible_staff(conn, caller, account_id), StaffAccount)


async def list_staff(
    conn: asyncpg.Connection, caller: Caller, *, limit: int, cursor: str | None, merchant_id: UUID | None = None
) -> Page[StaffAccount]:
    if caller.kind != "admin":
        raise Forbidden()
    return await keyset_page(
        conn, db.STAFF, admin_district(caller), merchant_id, kind=StaffAccount, limit=limit, cursor=cursor
    )


async def update_staff(
    conn: asyncpg.Connection, caller: Caller, account_id: UUID, data: StaffUpdate, *, redis: aioredis.Redis
) -> StaffAccount:
    """Change a role or disable: either ends the account's sessions (its tokens stop within a second)."""
    require_admin_writer(caller)
    row = await _visible_staff(conn, caller, account_id)
    merchant = await managed_merchant(conn, caller, row["merchant_id"], why=_MANAGED_BY)
    changes = {}
    if data.role is not msgspec.UNSET and data.role != row["role"]:
        await db.set_staff_role(conn, account_id, data.role)
        await identity.revoke_subject_sessions(conn, account_id, redis=redis)
        changes["role"] = data.role
    if data.disabled is not msgspec.UNSET and data.disabled != row["disabled"]:
        await identity.set_account_disabled(conn, account_id, disabled=data.disabled, redis=redis, actor=caller)
        changes["disabled"] = data.disabled
    if changes:
        await audit(conn, caller, "staff.update", "account", account_id, merchant["district"], changes=changes)
    return msgspec.convert(await db.get_staff(conn, account_id), StaffAccount)


async def admit_staff(conn: asyncpg.Connection, principal: identity.Principal) -> None:
    """The login hook (`identity.staff_login(admit=...)`): staff of a merchant that is not active
    get no session (403 merchant-inactive, told only after the password was right)."""
    if principal.kind != "staff":
        return
    if await db.share_merchant_status(conn, principal.merchant_id) != "active":
        raise MerchantInactive("This merchant is suspended or closed; its staff cannot sign in")
