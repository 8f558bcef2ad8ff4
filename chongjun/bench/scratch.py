"""A scratch database for one benchmark run: created on the configured server, dropped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec

from foundation.connections import dsn_with_database, open_connection
from foundation.settings import Settings
from migrations import apply_migrations

__all__ = ("scratch_database",)


@asynccontextmanager
async def scratch_database(settings: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Connection]]:
    """Settings pointing at a new, migrated database and one connection to it (as the owner, for
    generating data fast); both gone on exit.

    The database is dropped even when the run fails, so benchmarks never leave data behind.
    """
    name = "cj_bench_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(settings.migration_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        scratch = msgspec.structs.replace(
            settings, database_url=dsn_with_database(settings.database_url, name),
            database_owner_url=dsn_with_database(settings.migration_url, name),
        )
        conn = await open_connection(scratch, owner=True)
        try:
            await apply_migrations(conn)
            yield scratch, conn
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

