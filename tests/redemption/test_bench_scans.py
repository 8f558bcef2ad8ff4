"""`chongjun bench scans` itself, end to end on a small run: set-up over the admin API, fresh
codes, every scan accepted, the figures and the clean-up. The figures of a real run go in the
README; this only keeps the tool working."""

from __future__ import annotations

import pytest

import identity
from chongjun.bench.scans import run_scan_bench
from tests.support import live_server


@pytest.mark.parametrize(
    ("crypto_profile", "code"), [("intl", "suishen"), ("gm", "cj")], indirect=["crypto_profile"]
)
async def test_bench_scans_accepts_every_fresh_code(client, conn, settings, code):
    await identity.create_account(
        conn,
        identity.NewAccount(kind="admin", username="bench-admin", password="bench-admin-password", role="city"),
    )
    lines: list[str] = []
    with live_server(settings, workers=2) as base_url:
        result = await run_scan_bench(
            settings, url=base_url, workers=2, scans=200, warmup=20, concurrency=8, venues=2, devices=1,
            admin=("bench-admin", "bench-admin-password"), seed=7, code=code, echo=lines.append,
        )
    assert result.accepted == 200 and result.errors == 0, result.outcomes
    assert result.accepted_per_second > 0 and 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.worker_peak_rss_mb, "the server's processes were sampled"
    # every connection held by one of the two workers; the tail's windows within the run
    assert sum(result.connections_per_worker) == 8 and len(result.connections_per_worker) <= 2
    assert 0 < result.tail_share_in_3_windows <= 1 and len(result.tail_windows_at) <= 3
    assert all(0 <= at <= result.seconds for at in result.tail_windows_at)
    assert all(mb < 300 for mb in result.worker_peak_rss_mb.values()), result.worker_peak_rss_mb
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 220  # warm-up included
    # Clean-up: the run's benefit left the catalog and its merchant is closed.
    assert await conn.fetchval("SELECT status FROM benefits WHERE code LIKE 'BENCH-%'") == "retired"
    assert await conn.fetchval("SELECT status FROM merchants WHERE name LIKE '压测商户%'") == "closed"
