"""The one outbox writer: every change the data center needs writes an event through here.

Call `write_event` on the connection (and so in the transaction) of the change itself, so an
event exists exactly when the change committed. Hot paths that must not pay a round trip fold
`OUTBOX_INSERT` into their own statement as a CTE instead (the scan's ledger statement does).

An event is `(stream, type, version, subject, payload)`:
- `stream` orders events for the receiver (the relay numbers them per stream);
- `type` and `version` name the event's JSON Schema in docs/exchange.md (a changed shape is a
  new version, never an edit of an old one);
- `subject` is a person's internal id or None. It never leaves as such: the relay replaces it
  by a keyed pseudonym. `payload` must hold no personal data at all (no ID number, no name, no
  birth date), only ids, codes, counts and reasons.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

__all__ = ("EVENT_TYPES", "OUTBOX_INSERT", "write_event")

EVENT_TYPES: dict[str, tuple[str, int]] = {
    "redemption.accepted": ("ledger", 1),
    "redemption.reversed": ("ledger", 1),
    "scan.refused": ("scans", 1),
    "rating.created": ("ratings", 1),
    "rating_case.replied": ("ratings", 1),
    "roster.imported": ("roster", 1),
    "benefit.version": ("catalog", 1),
    "merchant.changed": ("merchants", 1),
    "venue.changed": ("merchants", 1),
    "device.changed": ("merchants", 1),
    "audit.entry": ("audit", 1),
}
"""Every event type, its stream and current version: the receiver's contract (docs/exchange.md)."""

OUTBOX_INSERT = "INSERT INTO outbox (stream, type, version, subject, payload)"
"""The head of the insert, for a statement that writes its event in a CTE."""


async def write_event(
    conn: asyncpg.Connection, type: str, payload: dict[str, Any], *, subject: UUID | None = None
) -> None:
    """Append one event of a known `type` (its stream and version come from EVENT_TYPES)."""
    stream, version = EVENT_TYPES[type]
    await conn.execute(f"{OUTBOX_INSERT} VALUES ($1, $2, $3, $4, $5)", stream, type, version, subject, payload)
