"""`chongjun audit verify|export|checkpoint` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec

from tests.archive.test_archive import _as_superuser, scripted_day
from tests.support import both_profiles


def _cli(settings, *args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
        "CHONGJUN_CRYPTO_PROFILE": settings.crypto_profile,
    }
    return subprocess.run([sys.executable, "-m", "chongjun.cli", *args], capture_output=True, text=True, env=env, timeout=120)


@both_profiles  # the CLI's key ring follows the profile (under gm it once swapped the SM2 key for EdDSA)
async def test_verify_passes_then_names_the_edited_entry_and_the_export_verifies_offline(app, client, conn, settings, tmp_path):
    day = await scripted_day(app, client, conn)
    ok = _cli(settings, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: ") and "2 signed checkpoints verify" in ok.stdout
    cut = _cli(settings, "audit", "checkpoint")
    assert cut.returncode == 0, cut.stderr
    assert cut.stdout.startswith("cjmf/audit/v1\n") and "\n\n\u2014 cjmf/audit/v1 " in cut.stdout
    out, jwks = tmp_path / "audit.ndjson", tmp_path / "jwks.json"
    exported = _cli(settings, "audit", "export", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    jwks.write_bytes(msgspec.json.encode(day["jwks"]))
    offline = _cli(settings, "audit", "verify", "--from", str(out), "--jwks", str(jwks))
    # The verify above is archived (audit.verify: the audit duty's work is an action too), so the
    # checkpoint cut after it is a third one.
    assert offline.returncode == 0 and "3 signed checkpoints verify" in offline.stdout, offline.stderr
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'audit.export'") == 1
    verified = await conn.fetchrow("SELECT detail FROM audit_log WHERE action = 'audit.verify'")
    assert verified["detail"]["ok"] is True

    await _as_superuser(conn, "UPDATE audit_log SET detail = detail || '{\"x\": 1}' WHERE seq = 4")
    bad = _cli(settings, "audit", "verify")
    assert bad.returncode == 1
    assert "FAILED (edited, first bad entry 4)" in bad.stderr, bad.stderr
    forged = tmp_path / "forged.ndjson"
    forged.write_bytes(out.read_bytes().replace(b'"seq":6}', b'"seq":66}', 1))
    refused = _cli(settings, "audit", "verify", "--from", str(forged), "--jwks", str(jwks))
    assert refused.returncode == 1 and "first bad entry 6" in refused.stderr, refused.stderr
