"""The migration runner: idempotent, concurrent-safe, and refuses edited history."""

from __future__ import annotations

import asyncio
import shutil

import asyncpg
import pytest

from migrations import MIGRATIONS_DIR, ChangedMigration, apply_migrations, discover, pending_migrations


async def test_template_has_every_migration(conn):
    applied = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["checksum"]) for r in applied] == [(m.version, m.checksum) for m in discover()]


async def test_applying_again_changes_nothing(conn):
    assert await apply_migrations(conn) == []
    assert await pending_migrations(conn) == []


async def test_concurrent_runners_apply_each_file_once(settings, tmp_path):
    """Several workers starting at once: the advisory lock lets one apply, the others see it done."""
    admin = await asyncpg.connect(settings.database_owner_url)
    await admin.execute("CREATE SCHEMA race")
    await admin.close()
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "0001_one.sql").write_text("CREATE TABLE race.counter (n int);")
    (directory / "0002_two.sql").write_text("INSERT INTO race.counter VALUES (1);")

    async def runner():
        conn = await asyncpg.connect(settings.database_owner_url, server_settings={"search_path": "race"})
        try:
            return await apply_migrations(conn, directory)
        finally:
            await conn.close()

    results = await asyncio.gather(*[runner() for _ in range(6)])
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, 2]
    conn = await asyncpg.connect(settings.database_owner_url)
    assert await conn.fetchval("SELECT count(*) FROM race.counter") == 1
    await conn.close()


async def test_changed_applied_migration_is_refused(settings, tmp_path):
    conn = await asyncpg.connect(settings.database_owner_url)
    try:
        directory = tmp_path / "m"
        shutil.copytree(MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        first = sorted(directory.glob("*.sql"))[0]
        first.write_text(first.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(ChangedMigration, match=first.name):
            await apply_migrations(conn, directory)
        with pytest.raises(ChangedMigration):
            await pending_migrations(conn, directory)
    finally:
        await conn.close()


async def test_failed_migration_leaves_nothing_behind(settings, tmp_path):
    conn = await asyncpg.connect(settings.database_owner_url)
    try:
        directory = tmp_path / "m"
        shutil.copytree(MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        (directory / "9998_good.sql").write_text("CREATE TABLE good_one (n int);")
        (directory / "9999_bad.sql").write_text("CREATE TABLE half_done (n int); SELECT no_such_function();")
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, directory)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT to_regclass('good_one')") == "good_one"
        assert [m.version for m in await pending_migrations(conn, directory)] == [9999]
    finally:
        await conn.close()


async def test_audit_log_is_append_only(conn):
    await conn.execute(
        "INSERT INTO audit_log (actor_kind, actor_id, action, object_kind, object_id) VALUES ('system','t','x','y','z')"
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE audit_log SET action = 'rewritten'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM audit_log")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("TRUNCATE audit_log")
