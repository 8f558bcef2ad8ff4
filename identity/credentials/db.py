"""SQL of the electronic 优待证."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

__all__: tuple[str, ...] = ()


async def insert_credential(
    conn: asyncpg.Connection,
    *,
    person_id: UUID,
    status_list: int,
    status_idx: int,
    vct: str,
    kid: str,
    holder_thumbprint: str,
    issued_at: datetime,
    expires_at: datetime,
) -> asyncpg.Record | None:
    """The new row, or None when (list, idx) is taken (the caller draws another index)."""
    return await conn.fetchrow(
        """
        INSERT INTO credentials (person_id, status_list, status_idx, vct, kid, holder_thumbprint, issued_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (status_list, status_idx) DO NOTHING
        RETURNING id
        """,
        person_id, status_list, status_idx, vct, kid, holder_thumbprint, issued_at, expires_at,
    )


async def list_statuses(conn: asyncpg.Connection, *, status_list: int) -> list[asyncpg.Record]:
    """Every entry of one list that is not VALID, with its value (1 invalid, 2 suspended)."""
    return await conn.fetch(
        """
        SELECT c.status_idx,
               CASE WHEN c.revoked_at IS NOT NULL OR p.card_status IN ('REVOKED', 'REPLACED') THEN 1
                    WHEN p.card_status = 'SUSPENDED' THEN 2 END AS status
          FROM credentials c JOIN people p ON p.id = c.person_id
         WHERE c.status_list = $1
           AND (c.revoked_at IS NOT NULL OR p.card_status <> 'ACTIVE')
        """,
        status_list,
    )


async def revoke_person_credentials(conn: asyncpg.Connection, person_id: UUID) -> int:
    result = await conn.execute(
        "UPDATE credentials SET revoked_at = now() WHERE person_id = $1 AND revoked_at IS NULL", person_id
    )
    return int(result.split()[-1])
