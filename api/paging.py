"""The paging query parameters every list route takes: `?limit=&cursor=` (rules in foundation.paging).

A list route asks for `paging: Paging` (the `paging` dependency, `provide_paging`, registered
app-wide), which declares both query parameters; a limit outside 1..MAX_LIMIT or an over-long cursor
is a 400 `invalid-request` before the handler runs, a cursor that does not decode is the service's
400 `invalid-cursor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar.di import NamedDependency
from litestar.params import QueryParameter

from foundation.paging import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, Page

__all__ = ("DEFAULT_LIMIT", "Cursor", "District", "Limit", "Page", "PageRequest", "Paging", "provide_paging")

Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_LIMIT, description=f"Page size (1-{MAX_LIMIT}, default {DEFAULT_LIMIT})")
]
Cursor = Annotated[
    str | None, QueryParameter(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
]
District = Annotated[str | None, QueryParameter(pattern=r"^31[0-9]{4}$", description="GB/T 2260 district code")]
"""The district filter of a list or report (a district admin's scope wins over it)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which page a caller asked for: pass on as `limit=paging.limit, cursor=paging.cursor`."""

    limit: int
    cursor: str | None


def provide_paging(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
    return PageRequest(limit, cursor)


Paging = NamedDependency[PageRequest]
"""`paging`: the `?limit=&cursor=` of a list route (`provide_paging`)."""
