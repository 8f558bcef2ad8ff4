"""三员分立: an account holds at most one of the system, security and audit duties, refused by the
service and by the database (concurrently too), and every assignment is archived."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import identity
from identity import DUTIES, DutyConflict, NotAnAdmin, assign_duty, duty_of
from tests.support import init_connection


async def _admin(conn, username: str, role: str = "city"):
    record, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username=username, password="a-long-enough-password", role=role)
    )
    return record.id


@pytest.mark.parametrize("first", DUTIES)
async def test_a_second_duty_is_refused_by_the_service(conn, first):
    account = await _admin(conn, "duty-admin")
    actor = await _admin(conn, "security-officer")
    assert await assign_duty(conn, account, first, actor_id=actor) is True
    assert await assign_duty(conn, account, first, actor_id=actor) is False  # idempotent
    for other in DUTIES:
        if other != first:
            with pytest.raises(DutyConflict):
                await assign_duty(conn, account, other, actor_id=actor)
    assert await duty_of(conn, account) == first
    entries = await conn.fetch("SELECT actor_id, detail FROM audit_log WHERE action = 'admin.duty.assign'")
    assert [(e["actor_id"], e["detail"]) for e in entries] == [(str(actor), {"duty": first})]


async def test_the_database_refuses_a_second_duty_whatever_the_application_does(conn):
    account = await _admin(conn, "duty-admin")
    await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'system')", account)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'audit')", account)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'root')", await _admin(conn, "x-admin"))


async def test_duties_belong_to_admins_only(conn):
    from tests.factories.world import make_merchant

    merchant = await make_merchant(conn)
    staff, _ = await identity.create_account(
        conn, identity.NewAccount(kind="staff", username="gate-staff", password="a-long-enough-password", merchant_id=merchant.id)
    )
    with pytest.raises(NotAnAdmin):
        await assign_duty(conn, staff.id, "system", actor_id=None)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO admin_duties (account_id, duty) VALUES ($1, 'system')", staff.id)
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'admin.duty.assign'") == 0


async def test_concurrent_assignments_of_different_duties_leave_exactly_one(settings, conn):
    account = await _admin(conn, "raced-admin")
    connections = [await asyncpg.connect(settings.database_url) for _ in DUTIES]
    try:
        for other in connections:
            await init_connection(other)
        outcomes = await asyncio.gather(
            *(assign_duty(c, account, duty, actor_id=None) for c, duty in zip(connections, DUTIES, strict=True)),
            return_exceptions=True,
        )
    finally:
        for other in connections:
            await other.close()
    assert sum(outcome is True for outcome in outcomes) == 1
    assert sum(isinstance(outcome, DutyConflict) for outcome in outcomes) == 2, outcomes
    assert await conn.fetchval("SELECT count(*) FROM admin_duties WHERE account_id = $1", account) == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'admin.duty.assign'") == 1
