"""Benchmarks that print a figure and the command that reproduces it.

`bench_import` measures the roster import: a synthetic roster of N people (valid GB 11643
numbers, fixed seed) is imported into a scratch database on the configured (or embedded)
PostgreSQL, then imported again (the idempotent path), and the scratch database is dropped.
Throwaway keys are used, so the benchmark never touches the real secrets; the crypto work is
the same.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from foundation.settings import Settings

__all__ = ("ImportBench", "bench_import")


class ImportBench(msgspec.Struct, frozen=True):
    rows: int
    generate_seconds: float
    import_seconds: float
    rows_per_second: float
    reimport_seconds: float
    inserted: int
    unchanged_on_reimport: int


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def bench_import(settings: Settings, *, rows: int, seed: int = 2026, progress=None) -> ImportBench:
    from foundation.connections import open_connection
    from identity.people import import_roster, synthetic_roster_csv
    from identity.pii import PiiVault
    from migrations import apply_migrations

    started = time.perf_counter()
    text = synthetic_roster_csv(rows, seed=seed)
    generated = time.perf_counter() - started
    vault = PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})

    name = "cj_bench_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(settings.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await open_connection(msgspec.structs.replace(settings, database_url=_with_database(settings.database_url, name)))
        try:
            await apply_migrations(conn)
            started = time.perf_counter()
            first = await import_roster(conn, vault, text, actor_id="bench", progress=progress)
            import_seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = await import_roster(conn, vault, text, actor_id="bench")
            reimport_seconds = time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return ImportBench(
        rows=rows,
        generate_seconds=round(generated, 2),
        import_seconds=round(import_seconds, 2),
        rows_per_second=round(rows / import_seconds),
        reimport_seconds=round(reimport_seconds, 2),
        inserted=first.inserted,
        unchanged_on_reimport=again.unchanged,
    )
