"""SQL of the trust list of identity issuers (migration 0017)."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__: tuple[str, ...] = ()

_COLUMNS = "code, name, province, kind, code_prefix, status, revision, jwks, verify_url, updated_at"


async def insert_issuer(conn: asyncpg.Connection, **fields: Any) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        INSERT INTO trusted_issuers (code, name, province, kind, code_prefix, jwks, verify_url)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
        """,
        fields["code"], fields["name"], fields["province"], fields["kind"], fields["code_prefix"], fields["jwks"],
        fields["verify_url"],
    )


async def list_issuers(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_COLUMNS} FROM trusted_issuers ORDER BY code")


async def get_issuer(conn: asyncpg.Connection, code: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM trusted_issuers WHERE code = $1" + (" FOR UPDATE" if lock else ""), code)


async def set_status(conn: asyncpg.Connection, code: str, status: str) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        UPDATE trusted_issuers SET status = $2, revision = nextval('trust_list_version'), updated_at = now()
         WHERE code = $1 RETURNING {_COLUMNS}
        """,
        code, status,
    )


async def list_version(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT coalesce(max(revision), 0) FROM trusted_issuers")
