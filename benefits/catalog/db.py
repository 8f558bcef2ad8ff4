"""SQL of the benefits catalog: one function per query, a missing row returns None."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from foundation.paging import Keyset

__all__ = (
    "delete_venue_links",
    "get_pointer",
    "get_pointer_by_code",
    "get_version_row",
    "insert_benefit",
    "insert_venue_links",
    "insert_version",
    "list_active_pointers",
    "list_benefit_page",
    "list_venue_links",
    "active_ids_at_venue",
    "quota_usage_for_person",
    "update_pointer",
)

_POINTER = "id, code, current_version, status, domain, created_at, updated_at"
_VERSION = "benefit_id, version, status, spec, created_at"


async def insert_benefit(
    conn: asyncpg.Connection, *, benefit_id: UUID, code: str, version: int, status: str, domain: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO benefits (id, code, current_version, status, domain) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {_POINTER}",
        benefit_id,
        code,
        version,
        status,
        domain,
    )


async def insert_version(
    conn: asyncpg.Connection,
    *,
    benefit_id: UUID,
    version: int,
    status: str,
    spec: dict[str, Any],
    actor_kind: str,
    actor_id: str,
    note: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO benefit_versions (benefit_id, version, status, spec, actor_kind, actor_id, note)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_VERSION}",
        *(benefit_id, version, status, spec, actor_kind, actor_id, note),
    )


async def get_pointer(conn: asyncpg.Connection, benefit_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    """The benefit row; `for_update` locks it until the transaction ends, so version numbers are
    taken one at a time."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_POINTER} FROM benefits WHERE id = $1{lock}", benefit_id)


async def get_pointer_by_code(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_POINTER} FROM benefits WHERE code = $1", code)


async def update_pointer(
    conn: asyncpg.Connection, *, benefit_id: UUID, version: int, status: str, domain: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE benefits SET current_version = $2, status = $3, domain = $4, updated_at = now()"
        f" WHERE id = $1 RETURNING {_POINTER}",
        benefit_id,
        version,
        status,
        domain,
    )


async def get_version_row(conn: asyncpg.Connection, benefit_id: UUID, version: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_VERSION} FROM benefit_versions WHERE benefit_id = $1 AND version = $2", benefit_id, version
    )


async def list_active_pointers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_POINTER} FROM benefits WHERE status = 'active' ORDER BY code")


async def active_ids_at_venue(conn: asyncpg.Connection, venue_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT b.id, b.current_version FROM venue_benefits vb JOIN benefits b ON b.id = vb.benefit_id"
        " WHERE vb.venue_id = $1 AND b.status = 'active' ORDER BY b.code",
        venue_id,
    )


async def list_venue_links(conn: asyncpg.Connection, benefit_ids: list[UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT benefit_id, venue_id FROM venue_benefits WHERE benefit_id = ANY($1::uuid[])"
        " ORDER BY benefit_id, venue_id",
        benefit_ids,
    )


async def delete_venue_links(conn: asyncpg.Connection, benefit_id: UUID) -> None:
    await conn.execute("DELETE FROM venue_benefits WHERE benefit_id = $1", benefit_id)


async def insert_venue_links(conn: asyncpg.Connection, benefit_id: UUID, venue_ids: list[UUID]) -> None:
    await conn.execute(
        "INSERT INTO venue_benefits (venue_id, benefit_id) SELECT v, $1 FROM unnest($2::uuid[]) AS v"
        " ON CONFLICT DO NOTHING",
        benefit_id,
        venue_ids,
    )


async def list_benefit_page(
    conn: asyncpg.Connection,
    *,
    after: Keyset | None,
    limit: int,
    status: str | None,
    domain: str | None,
) -> list[asyncpg.Record]:
    """Keyset page by (created_at, id); `limit` rows at most."""
    return await conn.fetch(
        f"SELECT {_POINTER} FROM benefits"
        " WHERE ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid))"
        " AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR domain = $4)"
        " ORDER BY created_at, id LIMIT $5",
        after[0] if after else None,
        after[1] if after else None,
        status,
        domain,
        limit,
    )


async def quota_usage_for_person(
    conn: asyncpg.Connection, person_id: UUID, period_keys: list[str]
) -> list[asyncpg.Record]:
    """The person's counted redemptions per benefit in the given period buckets (ledger, 0040)."""
    return await conn.fetch(
        "SELECT benefit_id, period_key, used FROM quota_usage WHERE person_id = $1 AND period_key = ANY($2::text[])",
        person_id,
        period_keys,
    )
