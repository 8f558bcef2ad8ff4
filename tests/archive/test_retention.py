"""Retention (网络安全法 第二十一条(三), 第二十三条 since 2026-01-01: logs kept no less than six months).

Pruning refuses any cut-off younger than six months (the service, the SQL function and the delete
trigger each), removes only signed entries, keeps their leaf hashes, and leaves the archive
verifying: checkpoints, proofs and the offline export. The service's role may not prune at all.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

import archive
from archive import merkle
from archive.checkpoints import unb64
from foundation.audit import leaf_hash, write_audit
from foundation.connections import init_connection
from tests.support import both_profiles
from tests.tokens import keyring_for


async def _entries(conn, count: int) -> None:
    for i in range(count):
        await write_audit(conn, actor_kind="system", actor_id="test", action="test.entry", object_kind="t", object_id=str(i))


async def _age(conn, below: int, at: datetime) -> None:
    """Make entries below `below` as old as `at` (as the owner with the triggers off: only a test
    can), their recorded leaf hashes recomputed, as if written then."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for seq in range(below):
            await conn.execute("UPDATE audit_log SET at = $2 WHERE seq = $1", seq, at + timedelta(seconds=seq))
            row = await conn.fetchrow(f"SELECT {archive.db.ENTRY_COLUMNS} FROM audit_log WHERE seq = $1", seq)
            await conn.execute("UPDATE audit_log SET leaf_hash = $2 WHERE seq = $1", seq, leaf_hash(archive.entry_of(row)))
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


async def test_nothing_younger_than_six_months_can_be_pruned(conn):
    await _entries(conn, 3)
    young = archive.retention_cutoff() + timedelta(days=1)
    with pytest.raises(archive.RetentionRefused):
        await archive.prune_archive(conn, young)
    with pytest.raises(asyncpg.CheckViolationError):  # the SQL function, called directly
        await conn.fetchval("SELECT audit_prune(now() - interval '5 months')")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the trigger, even with the prune flag set
        async with conn.transaction():
            await conn.execute("SELECT set_config('chongjun.audit_prune', 'on', true)")
            await conn.execute("DELETE FROM audit_log WHERE seq = 0")
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 3


def test_the_cutoff_is_six_calendar_months():
    assert archive.retention_cutoff(datetime(2026, 8, 31, 12, tzinfo=timezone.utc)) == datetime(2026, 2, 28, 12, tzinfo=timezone.utc)
    assert archive.retention_cutoff(datetime(2026, 3, 15, tzinfo=timezone.utc)) == datetime(2025, 9, 15, tzinfo=timezone.utc)


@both_profiles  # checkpoints are SM2-signed under gm: they verify over a pruned prefix under either
async def test_pruning_old_signed_entries_keeps_the_archive_verifying(settings, conn):
    keyring = await keyring_for(settings)
    await _entries(conn, 12)
    old = datetime.now(timezone.utc) - timedelta(days=400)
    await _age(conn, 8, old)
    async with conn.transaction():
        signed = await archive.cut_checkpoint(conn, keyring)
    await _entries(conn, 2)  # after the checkpoint: never pruned, however old the cut-off
    service = await asyncpg.connect(settings.database_url)
    try:
        await init_connection(service)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the service's role may not prune
            await service.fetchval("SELECT audit_prune(now() - interval '7 months')")
    finally:
        await service.close()

    pruned = await archive.prune_archive(conn, old + timedelta(days=30))
    assert pruned == 8
    assert await conn.fetchval("SELECT min(seq) FROM audit_log") == 8
    assert await conn.fetchval("SELECT count(*) FROM audit_pruned") == 8
    assert await conn.fetchval("SELECT pruned_below FROM audit_head") == 8
    prune_entry = await conn.fetchrow("SELECT actor_id, detail FROM audit_log WHERE action = 'audit.prune'")
    assert prune_entry["detail"]["entries"] == 8
    assert await archive.prune_archive(conn, old + timedelta(days=30)) == 0  # nothing more is old and signed

    jwks = keyring.jwks()
    report = await archive.verify_database(conn, jwks)
    assert report.ok, report.finding
    assert report.entries == await conn.fetchval("SELECT next_seq FROM audit_head")
    # A proof of a kept entry in the checkpoint signed before the prune still verifies.
    leaves = await archive.service._leaves(conn, signed.tree_size, recompute=False)
    proof = merkle.inclusion_proof(9, leaves)
    merkle.verify_inclusion(9, signed.tree_size, leaves[9], proof, unb64(signed.root_hash))
    # A new checkpoint over the pruned prefix is signed, and the export verifies offline.
    async with conn.transaction():
        later = await archive.cut_checkpoint(conn, keyring)
    assert later.tree_size > signed.tree_size
    out = io.BytesIO()
    async with conn.transaction(isolation="repeatable_read"):
        await archive.export_archive(conn, jwks, out.write)
    offline = archive.verify_export(out.getvalue().splitlines(), jwks)
    assert offline.ok and offline.entries == later.tree_size, offline.finding
    # A pruned leaf altered (by the superuser) is caught against the signed root.
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_pruned DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_pruned SET leaf_hash = $1 WHERE seq = 3", b"\x00" * 32)
        await conn.execute("ALTER TABLE audit_pruned ENABLE TRIGGER USER")
    tampered = await archive.verify_database(conn, jwks)
    assert not tampered.ok and tampered.finding.kind == "checkpoint-root"
