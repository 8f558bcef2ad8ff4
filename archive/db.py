"""SQL of the audit archive: the log (read only), its head, and the signed checkpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

__all__ = (
    "ENTRY_COLUMNS",
    "checkpoint",
    "checkpoints_page",
    "entries_page",
    "entry",
    "head",
    "insert_checkpoint",
    "iter_entries",
    "latest_checkpoint",
    "all_checkpoints",
    "prune",
    "pruned_leaves",
)

ENTRY_COLUMNS = (
    "seq, at, actor_kind, actor_id, actor_role, actor_district, action, object_kind, object_id, district,"
    " request_id, detail, leaf_hash"
)
_CHECKPOINT_COLUMNS = "tree_size, root_hash, at, note, kid, alg, signature"


async def head(conn: asyncpg.Connection) -> asyncpg.Record:
    """`next_seq` (the committed tree size), `archive_from` and `pruned_below`."""
    return await conn.fetchrow("SELECT next_seq, archive_from, pruned_below FROM audit_head WHERE one")


async def pruned_leaves(conn: asyncpg.Connection, *, below: int | None = None) -> list[asyncpg.Record]:
    """`seq`, `leaf_hash` of the pruned prefix, in seq order (their entries are gone, their leaves stay)."""
    return await conn.fetch(
        "SELECT seq, leaf_hash FROM audit_pruned WHERE ($1::bigint IS NULL OR seq < $1) ORDER BY seq", below
    )


async def prune(conn: asyncpg.Connection, before: datetime) -> int:
    """Migration 0051's `audit_prune` (the schema owner only): how many entries left the log."""
    return await conn.fetchval("SELECT audit_prune($1)", before)


async def entries_page(
    conn: asyncpg.Connection,
    *,
    district: str | None,
    actions: tuple[str, ...] | None,
    actor_kind: str | None,
    actor_id: str | None,
    action: str | None,
    action_prefix: str | None,
    object_kind: str | None,
    object_id: str | None,
    at_from: datetime | None,
    at_to: datetime | None,
    before_seq: int | None,
    limit: int,
    admin_roles: tuple[str, ...] | None = None,
    not_admin_roles: tuple[str, ...] = (),
) -> list[asyncpg.Record]:
    """Newest first by seq; every argument that is not None narrows. `admin_roles`: only entries
    whose actor is an admin of one of these roles; `not_admin_roles`: none whose actor is one."""
    return await conn.fetch(
        f"""
        SELECT {ENTRY_COLUMNS} FROM audit_log
         WHERE ($1::text IS NULL OR district = $1)
           AND ($2::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($2::text[]) p WHERE starts_with(action, p)))
           AND ($3::text IS NULL OR actor_kind = $3)
           AND ($4::text IS NULL OR actor_id = $4)
           AND ($5::text IS NULL OR action = $5)
           AND ($6::text IS NULL OR starts_with(action, $6))
           AND ($7::text IS NULL OR object_kind = $7)
           AND ($8::text IS NULL OR object_id = $8)
           AND ($9::timestamptz IS NULL OR at >= $9)
           AND ($10::timestamptz IS NULL OR at < $10)
           AND ($11::bigint IS NULL OR seq < $11)
           AND ($13::text[] IS NULL OR (actor_kind = 'admin' AND actor_role = ANY($13::text[])))
           AND NOT (actor_kind = 'admin' AND actor_role = ANY($14::text[]))
         ORDER BY seq DESC
         LIMIT $12
        """,
        district, list(actions) if actions is not None else None, actor_kind, actor_id, action, action_prefix,
        object_kind, object_id, at_from, at_to, before_seq, limit,
        list(admin_roles) if admin_roles is not None else None, list(not_admin_roles),
    )


async def entry(conn: asyncpg.Connection, seq: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq = $1", seq)


async def iter_entries(conn: asyncpg.Connection, *, below: int | None = None, batch: int = 5000) -> AsyncIterator[asyncpg.Record]:
    """Every entry in seq order (as stored: a deleted or duplicated seq shows as such), in batches."""
    last = -1
    while True:
        rows = await conn.fetch(
            f"SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > $1 AND ($2::bigint IS NULL OR seq < $2)"
            " ORDER BY seq, id LIMIT $3",
            last, below, batch,
        )
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        last = rows[-1]["seq"]


async def insert_checkpoint(
    conn: asyncpg.Connection, *, tree_size: int, root_hash: bytes, at: datetime, note: str, kid: str, alg: str,
    signature: bytes,
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        f" ON CONFLICT (tree_size) DO NOTHING RETURNING {_CHECKPOINT_COLUMNS}",
        tree_size, root_hash, at, note, kid, alg, signature,
    )


async def latest_checkpoint(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1")


async def checkpoint(conn: asyncpg.Connection, tree_size: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tree_size = $1", tree_size)


async def checkpoints_page(conn: asyncpg.Connection, *, below: int | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE ($1::bigint IS NULL OR tree_size < $1)"
        " ORDER BY tree_size DESC LIMIT $2",
        below, limit,
    )


async def all_checkpoints(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY tree_size")
