"""`chongjun partitions ensure|list|detach|export` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, datetime, timedelta

from benefits.catalog import SHANGHAI
from benefits.redemption import db, first_of_month


def _cli(settings, *args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run([sys.executable, "-m", "chongjun.cli", "partitions", *args], capture_output=True, text=True,
                          env=env, timeout=120)


async def test_ensure_detach_and_export_from_the_command_line(conn, settings, tmp_path):
    this_month = first_of_month(datetime.now(SHANGHAI).date())
    ahead = first_of_month(this_month, 7)
    made = _cli(settings, "ensure", "--months", "7")
    assert made.returncode == 0, made.stderr
    assert f"created redemptions_y{ahead:%Y}m{ahead:%m}" in made.stdout
    assert "partition(s) created, through 7 month(s) ahead" in made.stdout
    again = _cli(settings, "ensure", "--months", "7")
    assert again.returncode == 0 and again.stdout.startswith("0 partition(s) created"), again.stdout

    old = first_of_month(this_month, -9)  # long past every use
    await db.ensure_partitions(conn, first=old, last=old)
    await conn.execute(
        "INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id)"
        " VALUES (gen_random_uuid(), $1, 'expired', gen_random_uuid(), gen_random_uuid())",
        old + timedelta(days=3),
    )
    listed = _cli(settings, "list")
    assert listed.returncode == 0 and f"rejected_scans_y{old:%Y}m{old:%m}" in listed.stdout

    too_soon = _cli(settings, "detach", "--before", f"{this_month:%Y-%m}")
    assert too_soon.returncode != 0 and "may still be used" in too_soon.stderr
    bad = _cli(settings, "detach", "--before", "2026-13")
    assert bad.returncode == 2 and "is not YYYY-MM" in bad.stderr
    after = first_of_month(old, 1)
    detached = _cli(settings, "detach", "--before", f"{after:%Y-%m}")
    assert detached.returncode == 0, detached.stderr
    assert f"detached rejected_scans_y{old:%Y}m{old:%m}" in detached.stdout

    out = tmp_path / "archive"
    exported = _cli(settings, "export", "--month", f"{old:%Y-%m}", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    csv = out / f"rejected_scans_y{old:%Y}m{old:%m}.csv"
    assert f"{csv.name}: 1 rows, sha256 {hashlib.sha256(csv.read_bytes()).hexdigest()}" in exported.stdout
    check = subprocess.run(["sha256sum", "-c", f"ledger-{old:%Y-%m}.sha256"], cwd=out, capture_output=True, text=True)
    assert check.returncode == 0 and f"{csv.name}: OK" in check.stdout
    assert date.fromisoformat(csv.read_text().splitlines()[1].split(",")[2]) == old + timedelta(days=3)
