"""三员分立: an account holds at most one of the system, security and audit duties, the one its
role carries, given when the account is made; a second one or another one is refused by the
service and by the database (concurrently too), and every assignment is archived."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import identity
from identity import DUTIES, DutyConflict, NotAnAdmin, Principal, assign_duty, duty_of
from tests.support import init_connection

ROLE_OF = {"system": "city", "security": "security", "audit": "auditor"}


async def _admin(conn, username: str, role: str = "city", actor: Principal | None = None):
    record, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username=username, password="a-long-enough-password", role=role),
        actor=actor,
    )
    return record.id


async def _bare_admin(conn, username: str, role: str = "city"):
    """An admin row without its duty, as one made before migration 0051 or by SQL."""
    return await conn.fetchval(
        "INSERT INTO accounts (kind, username, password_hash, role) VALUES ('admin', $1, 'x', $2) RETURNING id",
        username, role,
    )


@pytest.mark.parametrize("first", DUTIES)
async def test_a_second_duty_is_refused_by_the_service(conn, first):
    officer = await _admin(conn, "security-officer", role="security")
    actor = Principal(kind="admin", subject=officer, role="security")
    account = await _admin(conn, "duty-admin", role=ROLE_OF[first], actor=actor)
    assert await duty_of(conn, account) == first  # given with the account
    assert await assign_duty(conn, account, first, actor=actor) is False  # idempotent
    for other in DUTIES:
        if other != first:
            with pytest.raises(DutyConflict):
                await assign_duty(conn, account, other, actor=actor)
    assert await duty_of(conn, account) == first
    entries = await conn.fetch(
        "SELECT actor_id, actor_role, detail FROM audit_log WHERE action = 'admin.duty.assign' AND object_id = $1",
        str(account),
    )
    assert [(e["actor_id"], e["actor_role"], e["detail"]) for e in entries] == [(str(officer), "security", {"duty": first})]


async def test_a_role_carries_one_duty_for_the_accounts_life(conn):
    city = await _admin(conn, "city-admin")
    with pytest.raises(asyncpg.CheckViolationError):  # to another duty: refused by the database
        await conn.execute("UPDATE accounts SET role = 'security' WHERE id = $1", city)
    await conn.execute("UPDATE accounts SET role = 'district', district = '310104' WHERE id = $1", city)  # same duty
    assert await duty_of(conn, city) == "system"
    bare = await _bare_admin(conn, "legacy-auditor", role="auditor")
    with pytest.raises(DutyConflict):
        await assign_duty(conn, bare, "security", actor=None)  # not the role's duty
    assert await assign_duty(conn, bare, "audit", actor=None) is True


async def test_the_database_refuses_a_second_duty_whatever_the_application_does(conn):
    account = await _admin(conn, "duty-admin")
    assert await duty_of(conn, account) == "system"
    with pytest.raises(asyncpg.UniqueViolationError):  # a second record: the primary key
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'system')", account)
    with pytest.raises(asyncpg.CheckViolationError):  # another duty: the trigger, before the key
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'audit')", account)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'root')", await _bare_admin(conn, "x-admin"))
    with pytest.raises(asyncpg.CheckViolationError):  # not the duty of the account's role
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'audit')", await _bare_admin(conn, "y-admin"))


async def test_the_service_role_cannot_edit_or_remove_a_duty(settings, conn):
    account = await _admin(conn, "kept-admin")
    service = await asyncpg.connect(settings.database_url)  # chongjun_app, as the app connects
    try:
        await init_connection(service)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("UPDATE admin_duties SET duty = 'security' WHERE account_id = $1", account)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("DELETE FROM admin_duties WHERE account_id = $1", account)
    finally:
        await service.close()
    assert await duty_of(conn, account) == "system"


async def test_duties_belong_to_admins_only(conn):
    from tests.factories.world import make_merchant

    merchant = await make_merchant(conn)
    staff, _ = await identity.create_account(
        conn, identity.NewAccount(kind="staff", username="gate-staff", password="a-long-enough-password", merchant_id=merchant.id)
    )
    with pytest.raises(NotAnAdmin):
        await assign_duty(conn, staff.id, "system", actor=None)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'system')", staff.id)
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'admin.duty.assign'") == 0


async def test_concurrent_assignments_of_different_duties_leave_exactly_one(settings, conn):
    account = await _bare_admin(conn, "raced-admin")
    connections = [await asyncpg.connect(settings.database_url) for _ in DUTIES]
    try:
        for other in connections:
            await init_connection(other)
        outcomes = await asyncio.gather(
            *(assign_duty(c, account, duty, actor=None) for c, duty in zip(connections, DUTIES, strict=True)),
            return_exceptions=True,
        )
    finally:
        for other in connections:
            await other.close()
    assert sum(outcome is True for outcome in outcomes) == 1
    assert sum(isinstance(outcome, DutyConflict) for outcome in outcomes) == 2, outcomes
    assert await conn.fetchval("SELECT count(*) FROM admin_duties WHERE account_id = $1", account) == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'admin.duty.assign'") == 1
