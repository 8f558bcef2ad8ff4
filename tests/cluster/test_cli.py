"""The CLI on a Redis Cluster: `CHONGJUN_REDIS_CLUSTER=1` with REDIS_URL naming one node."""

from __future__ import annotations

import os
import subprocess
import sys

from benefits.catalog import CATALOG_GEN_KEY
from tests.support import cluster_only


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_REDIS_CLUSTER": "1",
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
        "CHONGJUN_ENV": settings.env,
    }
    return subprocess.run(
        [sys.executable, "-m", "chongjun.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@cluster_only
async def test_seed_demo_writes_through_the_cluster(settings, conn, redis):
    assert await redis.get(CATALOG_GEN_KEY) is None
    seeded = _cli(settings, "seed-demo")
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    assert await conn.fetchval("SELECT count(*) FROM benefits") > 0
    assert await redis.get(CATALOG_GEN_KEY)  # the catalog change was published on the cluster


def test_the_cluster_needs_a_url():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    refused = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "migrate"], env={**env, "CHONGJUN_REDIS_CLUSTER": "1"},
        capture_output=True, text=True, timeout=60,
    )
    assert refused.returncode != 0
    assert "CHONGJUN_REDIS_CLUSTER=1 needs REDIS_URL" in refused.stderr
