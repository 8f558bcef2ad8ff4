"""三员分立: each admin account holds at most one of the three duties (GB/T 22239-2019 level 3).

- `system`: configures (catalog, merchants, venues, devices);
- `security`: manages accounts, roles and keys;
- `audit`: reads and verifies the archive, nothing else.

The duty follows the admin's role, and is for the account's life (`ROLE_DUTY`): `city` and
`district` admins hold the system duty (a district admin in their district only), `security`
admins the security duty, `auditor`s the audit duty. So an admin account is given its duty when
it is created (`identity.create_account` calls `assign_duty` in its transaction, with the actor);
a role may later change within its duty (city <-> district), never to another one.

`assign_duty` is the one way to record a duty. It refuses a duty other than the role's, and a
second, different duty, with `DutyConflict` (409) after reading the account's row under a lock;
the table's primary key on `account_id` (migration 0014) and the triggers of migration 0051 refuse
both even from concurrent callers or from SQL that bypasses this module. Every assignment is
archived through `foundation.audit.write_audit` in the same transaction. Who may create admin
accounts (the security administrator, or the operator at the command line) is the caller's check.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import asyncpg

from foundation.audit import write_audit
from foundation.errors import Conflict, Invalid, NotFound
from identity.types import Principal

__all__ = (
    "DUTIES", "ROLE_DUTY", "AccountNotFound", "Duty", "DutyConflict", "NotAnAdmin", "assign_duty", "duty_of",
    "duty_of_role", "roles_of_duty",
)

Duty = Literal["system", "security", "audit"]
DUTIES: tuple[Duty, ...] = ("system", "security", "audit")
ROLE_DUTY: dict[str, Duty] = {"city": "system", "district": "system", "security": "security", "auditor": "audit"}
"""Each admin role's one duty (migration 0051's `admin_duty_of_role` says the same in SQL)."""


def duty_of_role(role: str | None) -> Duty | None:
    return ROLE_DUTY.get(role) if role is not None else None


def roles_of_duty(*duties: Duty) -> tuple[str, ...]:
    """The admin roles that carry one of `duties`, in ROLE_DUTY's order."""
    return tuple(role for role, duty in ROLE_DUTY.items() if duty in duties)


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


async def assign_duty(conn: asyncpg.Connection, account_id: UUID, duty: Duty, *, actor: Principal | None) -> bool:
    """Record `account_id`'s `duty`; True when it is new, False when it already held it. `actor`:
    the admin who gave it, None for the operator at the command line.

    DutyConflict when it holds another; NotAnAdmin for a staff account. One transaction, the
    account row locked, so two concurrent assignments of different duties end with one duty.
    """
    if duty not in DUTIES:
        raise Invalid(f"a duty is one of {', '.join(DUTIES)}")
    async with conn.transaction():
        account = await conn.fetchrow("SELECT kind, role FROM accounts WHERE id = $1 FOR UPDATE", account_id)
        if account is None:
            raise AccountNotFound()
        if account["kind"] != "admin":
            raise NotAnAdmin()
        held = await duty_of(conn, account_id)
        if held == duty:
            return False
        if held is not None:
            raise DutyConflict(f"the account holds the {held} duty")
        if duty_of_role(account["role"]) != duty:
            raise DutyConflict(f"a {account['role']} admin holds the {duty_of_role(account['role'])} duty")
        try:
            await conn.execute(
                "INSERT INTO admin_duties (account_id, duty, assigned_by) VALUES ($1, $2, $3)", account_id, duty,
                actor.subject if actor is not None else None,
            )
        except asyncpg.UniqueViolationError:
            raise DutyConflict("the account holds another duty") from None
        await write_audit(
            conn,
            actor_kind=actor.kind if actor is not None else "system",
            actor_id=str(actor.subject) if actor is not None else "cli",
            actor_role=actor.role if actor is not None else None,
            actor_district=actor.district if actor is not None else None,
            action="admin.duty.assign",
            object_kind="account",
            object_id=str(account_id),
            detail={"duty": duty},
        )
    return True
