"""The service's own database role cannot rewrite history (migration 0004).

The app (and `settings.database_url`) connects as `chongjun_app`; migrations and the `conn`
fixture as the owner. Each attempt below must fail on privilege (SQLSTATE 42501, "permission
denied" / "must be owner"), not merely on the append-only triggers the owner could switch off.
"""

from __future__ import annotations

import asyncpg
import pytest

from foundation.audit import write_audit
from foundation.connections import SERVICE_ROLE, init_connection

HISTORY = (
    "audit_log", "audit_checkpoints", "audit_pruned", "admin_duties", "redemptions", "rejected_scans", "consumed_codes",
    "benefit_versions", "ratings", "redemption_reversals",
)


@pytest.fixture
async def service(settings):
    conn = await asyncpg.connect(settings.database_url)
    await init_connection(conn)
    yield conn
    await conn.close()


async def test_the_app_connects_as_the_service_role(client, conn, service):
    assert await service.fetchval("SELECT current_user") == SERVICE_ROLE
    assert await service.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
    assert await service.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user") == 0
    assert (await client.get("/ready")).status_code == 200
    users = await conn.fetch(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert [u["usename"] for u in users] == [SERVICE_ROLE]   # the app's pool and `service` only


@pytest.mark.parametrize("table", HISTORY)
async def test_history_cannot_be_updated_deleted_or_truncated(service, table):
    column = await service.fetchval(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position LIMIT 1", table
    )
    for sql in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await service.execute(sql)


@pytest.mark.parametrize("table", ("audit_log", "redemptions"))
async def test_their_triggers_cannot_be_disabled(service, table):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
        await service.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
        await service.execute(f"DROP TABLE {table}")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await service.execute("SET session_replication_role = replica")  # would skip every trigger


async def test_the_sequence_head_is_out_of_reach_but_the_writer_works(service):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await service.execute("UPDATE audit_head SET next_seq = next_seq + 5")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await service.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'x', 'y')")
    assert await write_audit(service, actor_kind="system", actor_id="t", action="test.write", object_kind="t", object_id="1") == 0
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):   # no choosing one's own number
        await service.execute(
            "INSERT INTO audit_log (seq, actor_kind, actor_id, action, object_kind, object_id) VALUES (7, 's', 't', 'x', 'y', 'z')"
        )
    assert await service.fetchval("SELECT next_seq FROM audit_head") == 1
