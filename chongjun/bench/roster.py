"""`chongjun bench import`: the roster import, in rows per second.

A synthetic roster of N people (valid GB 11643 numbers, fixed seed) is imported into a scratch
database on the configured (or embedded) PostgreSQL, then imported again (the idempotent path),
and the scratch database is dropped. Throwaway keys are used, so the benchmark never touches the
real secrets; the crypto work is the same.
"""

from __future__ import annotations

import os
import time

import msgspec

from chongjun.bench.scratch import scratch_database
from foundation.settings import Settings
from identity import PiiVault, import_roster, synthetic_roster_csv

__all__ = ("ImportBench", "bench_import")


class ImportBench(msgspec.Struct, frozen=True):
    rows: int
    generate_seconds: float
    import_seconds: float
    rows_per_second: float
    reimport_seconds: float
    inserted: int
    unchanged_on_reimport: int


async def bench_import(settings: Settings, *, rows: int, seed: int = 2026, progress=None) -> ImportBench:
    started = time.perf_counter()
    text = synthetic_roster_csv(rows, seed=seed)
    generated = time.perf_counter() - started
    vault = PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})
    async with scratch_database(settings) as (_, conn):
        started = time.perf_counter()
        first = await import_roster(conn, vault, text, actor_id="bench", progress=progress)
        import_seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = await import_roster(conn, vault, text, actor_id="bench")
        reimport_seconds = time.perf_counter() - started
    return ImportBench(
        rows=rows,
        generate_seconds=round(generated, 2),
        import_seconds=round(import_seconds, 2),
        rows_per_second=round(rows / import_seconds),
        reimport_seconds=round(reimport_seconds, 2),
        inserted=first.inserted,
        unchanged_on_reimport=again.unchanged,
    )
