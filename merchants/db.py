"""SQL of the merchants package: one function per query; a missing row returns None."""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

import asyncpg

from foundation.paging import Keyset
from merchants.types import MerchantCreate

__all__ = (
    "DEVICES",
    "MERCHANTS",
    "STAFF",
    "VENUES",
    "KeysetSource",
    "list_keyset",
    "create_device",
    "create_merchant",
    "create_venue",
    "device_state",
    "get_device",
    "get_device_for_token",
    "get_device_identity",
    "get_merchant",
    "get_staff",
    "get_venue",
    "list_merchant_venues",
    "list_public_venues",
    "merchant_device_ids",
    "merchant_visible_in_district",
    "revoke_device",
    "roll_device_secret",
    "set_staff_role",
    "share_merchant_status",
    "touch_device_token",
    "update_merchant",
    "update_venue",
    "venue_device_ids",
)

_MERCHANT_COLUMNS = "id, name, credit_code, district, contact_name, contact_phone, status, created_at, updated_at"
_VENUE_COLUMNS = """
    v.id, v.merchant_id, v.name_zh, v.name_en, v.district, v.address,
    CASE WHEN v.latitude IS NULL THEN NULL
         ELSE jsonb_build_object('lat', v.latitude, 'lng', v.longitude) END AS location,
    v.domain, v.opening_hours, v.daily_capacity, v.status, v.created_at, v.updated_at
"""
_DEVICE_COLUMNS = "d.id, d.venue_id, d.merchant_id, d.label, d.status, d.created_at, d.revoked_at, d.last_token_at"

# A district sees a merchant (alias m) that it onboarded or that has a venue inside it ($1).
_MERCHANT_IN_DISTRICT = "m.district = $1 OR EXISTS (SELECT 1 FROM venues v WHERE v.merchant_id = m.id AND v.district = $1)"


class KeysetSource(NamedTuple):
    """A list that pages by keyset: `query` is a SELECT … WHERE whose filters are $1…$n, `key` the
    alias of the table whose `(created_at, id)` orders it."""

    query: str
    key: str


async def list_keyset(
    conn: asyncpg.Connection, source: KeysetSource, *filters: Any, after: Keyset | None, limit: int
) -> list[asyncpg.Record]:
    """The rows of `source` (its filters bound to `filters`, in order) oldest first by
    `(key.created_at, key.id)`, strictly after the cursor position `after`, `limit` at most: the
    one keyset list of this package."""
    n = len(filters)
    after_at, after_id = after or (None, None)
    return await conn.fetch(
        f"""
        {source.query}
          AND (${n + 1}::timestamptz IS NULL OR ({source.key}.created_at, {source.key}.id) > (${n + 1}, ${n + 2}::uuid))
        ORDER BY {source.key}.created_at, {source.key}.id
        LIMIT ${n + 3}
        """,
        *filters,
        after_at,
        after_id,
        limit,
    )


async def _update(
    conn: asyncpg.Connection, table: str, key: str, columns: str, row_id: UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Set `changes` (column → value) and `updated_at` on one row of `table` (alias `key` in
    `columns`); the row as `columns` shows it, or None when there is no such row. Column names
    come from an update struct's fields, never from the request."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(changes, start=2))
    return await conn.fetchrow(
        f"""
        WITH {key} AS (UPDATE {table} SET {assignments}, updated_at = now() WHERE id = $1 RETURNING *)
        SELECT {columns} FROM {key}
        """,
        row_id,
        *changes.values(),
    )


# --- merchants ---------------------------------------------------------------------------------


async def create_merchant(conn: asyncpg.Connection, *, new: MerchantCreate) -> asyncpg.Record | None:
    """The new merchant, or None when the credit code is taken."""
    return await conn.fetchrow(
        f"""
        INSERT INTO merchants (name, credit_code, district, contact_name, contact_phone)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (credit_code) DO NOTHING
        RETURNING {_MERCHANT_COLUMNS}
        """,
        new.name,
        new.credit_code,
        new.district,
        new.contact_name,
        new.contact_phone,
    )


async def get_merchant(conn: asyncpg.Connection, merchant_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_MERCHANT_COLUMNS} FROM merchants WHERE id = $1{lock}", merchant_id)


async def share_merchant_status(conn: asyncpg.Connection, merchant_id: UUID) -> str | None:
    """The merchant's status, with a share lock until the transaction ends: a concurrent status
    change waits for it (and then ends what it admitted), or goes first and is seen."""
    return await conn.fetchval("SELECT status FROM merchants WHERE id = $1 FOR SHARE", merchant_id)


async def merchant_visible_in_district(conn: asyncpg.Connection, merchant_id: UUID, district: str) -> bool:
    return await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM merchants m WHERE m.id = $2 AND ({_MERCHANT_IN_DISTRICT}))", district, merchant_id)


MERCHANTS = KeysetSource(
    f"""
        SELECT {_MERCHANT_COLUMNS} FROM merchants m
        WHERE ($1::text IS NULL OR {_MERCHANT_IN_DISTRICT}) AND ($2::uuid IS NULL OR m.id = $2)
    """,
    key="m",
)
"""Filters: $1 district, $2 merchant_id (None: any)."""


async def update_merchant(conn: asyncpg.Connection, merchant_id: UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    return await _update(conn, "merchants", "m", _MERCHANT_COLUMNS, merchant_id, changes)


# --- venues ------------------------------------------------------------------------------------


async def create_venue(
    conn: asyncpg.Connection,
    *,
    merchant_id: UUID,
    name_zh: str,
    name_en: str | None,
    district: str,
    address: str,
    latitude: float | None,
    longitude: float | None,
    domain: str,
    opening_hours: list[Any],
    daily_capacity: int | None,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        WITH v AS (
            INSERT INTO venues (merchant_id, name_zh, name_en, district, address, latitude, longitude,
                                domain, opening_hours, daily_capacity)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            RETURNING *
        )
        SELECT {_VENUE_COLUMNS} FROM v
        """,
        merchant_id, name_zh, name_en, district, address,
        latitude, longitude, domain, opening_hours, daily_capacity,
    )


async def get_venue(conn: asyncpg.Connection, venue_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {_VENUE_COLUMNS} FROM venues v WHERE v.id = $1{lock}", venue_id)


VENUES = KeysetSource(
    f"""
        SELECT {_VENUE_COLUMNS} FROM venues v
        WHERE ($1::text IS NULL OR v.district = $1) AND ($2::uuid IS NULL OR v.merchant_id = $2)
    """,
    key="v",
)
"""Filters: $1 district, $2 merchant_id (None: any)."""


async def update_venue(conn: asyncpg.Connection, venue_id: UUID, changes: dict[str, Any]) -> asyncpg.Record | None:
    return await _update(conn, "venues", "v", _VENUE_COLUMNS, venue_id, changes)


async def list_public_venues(conn: asyncpg.Connection, *, domain: str | None, district: str | None) -> list[asyncpg.Record]:
    """Open venues of active merchants: the public catalog is small, so it is not paged."""
    return await conn.fetch(
        f"""
        SELECT {_VENUE_COLUMNS}, m.name AS merchant_name,
               -- The catalog's link (migration 0030): codes of the active benefits offered here.
               array(SELECT b.code FROM venue_benefits vb JOIN benefits b ON b.id = vb.benefit_id
                     WHERE vb.venue_id = v.id AND b.status = 'active' ORDER BY b.code) AS benefit_codes
        FROM venues v JOIN merchants m ON m.id = v.merchant_id
        WHERE v.status = 'active' AND m.status = 'active'
          AND ($1::text IS NULL OR v.domain = $1)
          AND ($2::text IS NULL OR v.district = $2)
        ORDER BY v.district, v.name_zh, v.id
        """,
        domain,
        district,
    )


# --- devices -----------------------------------------------------------------------------------


async def create_device(
    conn: asyncpg.Connection,
    *,
    device_id: UUID,
    venue_id: UUID,
    merchant_id: UUID,
    label: str,
    secret_hash: bytes,
    created_by_kind: str,
    created_by: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""
        INSERT INTO devices AS d (id, venue_id, merchant_id, label, secret_hash, created_by_kind, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING {_DEVICE_COLUMNS}
        """,
        device_id, venue_id, merchant_id, label, secret_hash, created_by_kind, created_by,
    )


async def get_device(conn: asyncpg.Connection, device_id: UUID, *, for_update: bool = False) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_DEVICE_COLUMNS}, v.district FROM devices d JOIN venues v ON v.id = d.venue_id WHERE d.id = $1{lock}",
        device_id,
    )


DEVICES = KeysetSource(
    f"""
        SELECT {_DEVICE_COLUMNS} FROM devices d JOIN venues v ON v.id = d.venue_id
        WHERE ($1::text IS NULL OR v.district = $1) AND ($2::uuid IS NULL OR d.merchant_id = $2)
          AND ($3::uuid IS NULL OR d.venue_id = $3)
    """,
    key="d",
)
"""Filters: $1 district, $2 merchant_id, $3 venue_id (None: any)."""


async def revoke_device(conn: asyncpg.Connection, device_id: UUID) -> asyncpg.Record | None:
    """Revoke an active device; None when it was already revoked (or does not exist)."""
    return await conn.fetchrow(
        f"""
        UPDATE devices AS d SET status = 'revoked', revoked_at = now()
        WHERE d.id = $1 AND d.status = 'active'
        RETURNING {_DEVICE_COLUMNS}
        """,
        device_id,
    )


async def roll_device_secret(conn: asyncpg.Connection, device_id: UUID, secret_hash: bytes) -> asyncpg.Record | None:
    """New secret for an active device, one generation on: tokens of earlier ones stop working."""
    return await conn.fetchrow(
        f"""
        UPDATE devices AS d
        SET secret_hash = $2, secret_generation = d.secret_generation + 1, secret_rolled_at = now()
        WHERE d.id = $1 AND d.status = 'active'
        RETURNING {_DEVICE_COLUMNS}, d.secret_generation
        """,
        device_id,
        secret_hash,
    )


async def get_device_for_token(conn: asyncpg.Connection, device_id: UUID) -> asyncpg.Record | None:
    """What issuing a device token needs: the hash, its generation, and whether device, venue and
    merchant are active (read together, so a token never names a generation its secret is not)."""
    return await conn.fetchrow(
        """
        SELECT d.id, d.venue_id, d.merchant_id, d.secret_hash, d.secret_generation,
               d.status = 'active' AND v.status = 'active' AND m.status = 'active' AS usable
        FROM devices d JOIN venues v ON v.id = d.venue_id JOIN merchants m ON m.id = d.merchant_id
        WHERE d.id = $1
        """,
        device_id,
    )


async def touch_device_token(conn: asyncpg.Connection, device_id: UUID) -> None:
    await conn.execute("UPDATE devices SET last_token_at = now() WHERE id = $1", device_id)


async def device_state(conn: asyncpg.Connection, device_id: UUID) -> asyncpg.Record | None:
    """Whether a device may act now, and the generation of its current secret."""
    return await conn.fetchrow(
        """
        SELECT d.status = 'active' AND v.status = 'active' AND m.status = 'active' AS usable,
               d.secret_generation
        FROM devices d JOIN venues v ON v.id = d.venue_id JOIN merchants m ON m.id = d.merchant_id
        WHERE d.id = $1
        """,
        device_id,
    )


async def get_device_identity(conn: asyncpg.Connection, device_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT d.id AS device_id, d.label, d.venue_id, v.name_zh AS venue_name_zh, v.name_en AS venue_name_en,
               d.merchant_id, m.name AS merchant_name
        FROM devices d JOIN venues v ON v.id = d.venue_id JOIN merchants m ON m.id = d.merchant_id
        WHERE d.id = $1
        """,
        device_id,
    )


async def merchant_device_ids(conn: asyncpg.Connection, merchant_id: UUID) -> list[UUID]:
    rows = await conn.fetch("SELECT id FROM devices WHERE merchant_id = $1 AND status = 'active'", merchant_id)
    return [row["id"] for row in rows]


async def venue_device_ids(conn: asyncpg.Connection, venue_id: UUID) -> list[UUID]:
    rows = await conn.fetch("SELECT id FROM devices WHERE venue_id = $1 AND status = 'active'", venue_id)
    return [row["id"] for row in rows]


# --- venues of one merchant (for the ledger's reports) -------------------------------------------


async def list_merchant_venues(conn: asyncpg.Connection, merchant_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, name_zh, district FROM venues WHERE merchant_id = $1 ORDER BY created_at, id", merchant_id
    )


# --- staff accounts (identity's `accounts` table, staff rows only) -------------------------------

_STAFF_COLUMNS = """
    a.id, a.merchant_id, a.username, a.role, a.totp_secret_enc IS NOT NULL AS totp_enabled,
    a.disabled_at IS NOT NULL AS disabled, a.created_at
"""


async def get_staff(conn: asyncpg.Connection, account_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_STAFF_COLUMNS} FROM accounts a WHERE a.id = $1 AND a.kind = 'staff'", account_id)


STAFF = KeysetSource(
    f"""
        SELECT {_STAFF_COLUMNS} FROM accounts a JOIN merchants m ON m.id = a.merchant_id
        WHERE a.kind = 'staff' AND ($1::text IS NULL OR {_MERCHANT_IN_DISTRICT}) AND ($2::uuid IS NULL OR a.merchant_id = $2)
    """,
    key="a",
)
"""Filters: $1 district, $2 merchant_id (None: any)."""


async def set_staff_role(conn: asyncpg.Connection, account_id: UUID, role: str) -> None:
    await conn.execute("UPDATE accounts SET role = $2 WHERE id = $1 AND kind = 'staff'", account_id, role)
