"""The one audit writer: every package records what it changed through `write_audit`.

Call it on the connection (and so in the transaction) of the change itself, so an entry exists
exactly when the change committed. `detail` is JSON and must hold no personal data: counts, ids,
before → after of configuration, digests; never an ID number, a name or a secret.
"""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ("write_audit",)

_INSERT = """
    INSERT INTO audit_log (actor_kind, actor_id, action, object_kind, object_id, district, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


async def write_audit(
    conn: asyncpg.Connection,
    *,
    actor_kind: str,
    actor_id: str,
    action: str,
    object_kind: str,
    object_id: str,
    district: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to `audit_log` (append-only: its trigger refuses UPDATE and DELETE)."""
    await conn.execute(_INSERT, actor_kind, actor_id, action, object_kind, object_id, district, detail or {})
