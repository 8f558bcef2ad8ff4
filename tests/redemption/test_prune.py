"""`chongjun prune`: old Idempotency-Key answers and long-expired refresh tokens go, nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from benefits.redemption import prune_idempotency_keys
from identity import prune_refresh_tokens


async def _key(conn, key: str, age_hours: float) -> None:
    await conn.execute(
        "INSERT INTO idempotency_keys (caller, key, fingerprint, status, response, created_at)"
        " VALUES ('device:x', $1, '\\x00', 200, '\\x7b7d', now() - make_interval(secs => $2))",
        key, age_hours * 3600,
    )


async def _refresh(conn, expired_days_ago: float) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, subject, principal, issued_at, expires_at)"
        " VALUES ($1, $2, $2, $3::jsonb, now() - interval '40 days', now() - make_interval(secs => $4))",
        os.urandom(32), uuid.uuid4(), json.dumps({"kind": "veteran"}), expired_days_ago * 86400,
    )


def _cli(settings, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": settings.database_url, "DATABASE_OWNER_URL": settings.database_owner_url, "REDIS_URL": settings.redis_url,
           "CHONGJUN_DATA_DIR": str(settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "chongjun.cli", *args], capture_output=True, text=True, env=env, timeout=60)


async def test_prune_cli_removes_only_what_is_past_its_window(settings, conn):
    for number, age in enumerate((1, 23, 47, 49, 100)):
        await _key(conn, f"k{number}-{age}h", age)
    for days in (-1, 0.5, 6, 8, 30):  # -1: not expired yet
        await _refresh(conn, days)
    await conn.execute(
        "INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id, at)"
        " VALUES ($1, current_date - 30, 'expired', $1, $1, now() - interval '30 days')",
        uuid.uuid4(),
    )

    done = _cli(settings, "prune")
    assert done.returncode == 0, done.stderr
    assert "pruned 2 Idempotency-Key answer(s) older than 48 h and 2 refresh token(s)" in done.stdout
    kept = sorted(r["key"] for r in await conn.fetch("SELECT key FROM idempotency_keys"))
    assert kept == ["k0-1h", "k1-23h", "k2-47h"]
    assert await conn.fetchval("SELECT count(*) FROM refresh_tokens") == 3
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans") == 1  # history is never pruned

    assert _cli(settings, "prune", "--idempotency-hours", "12").returncode != 0  # under 24 h: refused


async def test_prune_refuses_windows_shorter_than_the_contract(conn):
    with pytest.raises(ValueError):
        await prune_idempotency_keys(conn, older_than=timedelta(hours=23))
    with pytest.raises(ValueError):
        await prune_refresh_tokens(conn, expired_for=timedelta(hours=12))


async def test_prune_works_in_batches(conn):
    for number in range(25):
        await _key(conn, f"old-{number}", 30)
    assert await prune_idempotency_keys(conn, older_than=timedelta(hours=24), batch=10) == 25
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
