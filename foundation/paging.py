"""One way to page a long list: `Page[T]`, one cursor codec, one limit rule, one error.

- A list answers `Page[T]` = `{items, next_cursor}`; `next_cursor` is None on the last page.
- A cursor is opaque to clients: base64url (no padding) of the JSON pair `[sort key, id]` of the
  last row of the page, where the sort key is the list's timestamp (its keyset order is
  `(timestamp, id)`, ascending or descending as the list documents). Anything that does not
  decode to such a pair, tampered or truncated, is one 400 `invalid-cursor`.
- `limit` is 1..`MAX_LIMIT`, `DEFAULT_LIMIT` when absent; `api/paging.py` declares the query
  parameters from these constants, so every list route takes the same ones.
- A service fetches `limit + 1` rows (`fetch_size`) and `page_of` cuts them into a page, so
  "is there more" costs no second query.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

import msgspec

from foundation.errors import BadRequest
from foundation.structs import Record

__all__ = (
    "DEFAULT_LIMIT",
    "MAX_CURSOR_LENGTH",
    "MAX_LIMIT",
    "InvalidCursor",
    "Keyset",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "fetch_size",
    "page_of",
)

T = TypeVar("T")

DEFAULT_LIMIT: Final = 20
"""Rows per page when the caller does not say."""
MAX_LIMIT: Final = 100
"""The most rows one page may hold, for every list."""
MAX_CURSOR_LENGTH: Final = 200
"""Longer than any cursor we give out: a longer one is refused before it is decoded."""

Keyset = tuple[datetime, UUID]
"""The position a cursor names: the sort timestamp and id of the last row shown."""



class InvalidCursor(BadRequest):
    """A cursor this service did not give out (tampered, truncated or from elsewhere)."""

    type = "invalid-cursor"
    title = "Invalid cursor"


class Page(Record, Generic[T]):
    """One page of a long list; pass `next_cursor` back as `cursor` for the next one (None: the end)."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(sort_at: datetime, row_id: UUID) -> str:
    raw = msgspec.json.encode((sort_at, row_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> Keyset | None:
    """The keyset position of `cursor`; None for the first page (no cursor)."""
    if not cursor:
        return None
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_at, row_id = msgspec.json.decode(raw, type=Keyset)
    except (ValueError, binascii.Error, msgspec.DecodeError) as exc:
        raise InvalidCursor("The cursor is not one this list gave out") from exc
    # A cursor is no capability, so a hand-made one without an offset is read as UTC, not refused.
    return (sort_at if sort_at.tzinfo else sort_at.replace(tzinfo=timezone.utc)), row_id


def fetch_size(limit: int) -> int:
    """Rows to ask the database for: one more than the page, to know whether another follows."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit {limit} is outside 1..{MAX_LIMIT}")
    return limit + 1


def page_of(
    rows: Sequence[Any],
    limit: int,
    item: Callable[[Any], T],
    *,
    sort_key: str = "created_at",
) -> Page[T]:
    """The first `limit` of `rows` (fetched with `fetch_size(limit)`) as a page; the cursor names the
    last row shown by its `sort_key` column and `id`."""
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(
        items=[item(row) for row in rows[:limit]],
        next_cursor=encode_cursor(last[sort_key], last["id"]) if last is not None else None,
    )
