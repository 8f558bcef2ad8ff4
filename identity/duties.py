"""三员分立: each admin account holds at most one of the three duties (GB/T 22239-2019 level 3).

- `system`: configures (catalog, merchants, venues, devices);
- `security`: manages accounts, roles and keys;
- `audit`: reads and verifies the archive, nothing else.

`assign_duty` is the one way to give a duty. It refuses a second, different duty with
`DutyConflict` (409) after reading the account's row under a lock, and the table's primary key on
`account_id` (migration 0014) refuses it even from concurrent callers or from SQL that bypasses
this module. Every assignment is archived through `foundation.audit.write_audit` in the same
transaction. Who may assign (the security administrator) is the caller's check.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg

from foundation.audit import write_audit
from foundation.errors import Conflict, Invalid, NotFound

__all__ = ("DUTIES", "AccountNotFound", "Duty", "DutyConflict", "NotAnAdmin", "assign_duty", "duty_of")

Duty = Literal["system", "security", "audit"]
DUTIES: tuple[Duty, ...] = ("system", "security", "audit")


class DutyConflict(Conflict):
    """The account already holds another of the three duties (三员分立)."""

    type = "duty-conflict"
    title = "An account holds at most one of the system, security and audit duties"


class NotAnAdmin(Invalid):
    type = "not-an-admin"
    title = "Duties belong to admin accounts"


class AccountNotFound(NotFound):
    type = "account-not-found"
    title = "No such account"


async def duty_of(conn: asyncpg.Connection, account_id: UUID) -> Duty | None:
    return await conn.fetchval("SELECT duty FROM admin_duties WHERE account_id = $1", account_id)


async def assign_duty(conn: asyncpg.Connection, account_id: UUID, duty: Duty, *, actor_id: UUID | None) -> bool:
    """Give `account_id` the `duty`; True when it is new, False when it already held it.

    DutyConflict when it holds another; NotAnAdmin for a staff account. One transaction, the
    account row locked, so two concurrent assignments of different duties end with one duty.
    """
    if duty not in DUTIES:
        raise Invalid(f"a duty is one of {', '.join(DUTIES)}")
    async with conn.transaction():
        kind = await conn.fetchval("SELECT kind FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        if kind is None:
            raise AccountNotFound()
        if kind != "admin":
            raise NotAnAdmin()
        held = await duty_of(conn, account_id)
        if held == duty:
            return False
        if held is not None:
            raise DutyConflict(f"the account holds the {held} duty")
        try:
            await conn.execute(
                "INSERT INTO admin_duties (account_id, duty, assigned_by) VALUES ($1, $2, $3)", account_id, duty, actor_id
            )
        except asyncpg.UniqueViolationError:
            raise DutyConflict("the account holds another duty") from None
        await write_audit(
            conn,
            actor_kind="admin" if actor_id is not None else "system",
            actor_id=str(actor_id) if actor_id is not None else "cli",
            action="admin.duty.assign",
            object_kind="account",
            object_id=str(account_id),
            detail={"duty": duty},
        )
    return True
