"""People for rule tests, shaped like `identity.Person` (the fields the rules read)."""

from __future__ import annotations

import uuid
from datetime import date
from uuid import UUID

import msgspec

__all__ = ("TestPerson", "person")


class TestPerson(msgspec.Struct, frozen=True, kw_only=True):
    __test__ = False  # not a pytest test class

    id: UUID
    name_masked: str = "张*"
    categories: frozenset[str] = frozenset()
    disability_grade: int | None = None
    disability_cause: str | None = None
    card_kind: str = "VETERAN_CARD"
    card_status: str = "ACTIVE"
    card_province: str = "310000"
    district: str | None = "310104"
    birth_date: date | None = date(1970, 5, 1)


def person(*categories: str, **fields) -> TestPerson:
    return TestPerson(id=fields.pop("id", None) or uuid.uuid4(), categories=frozenset(categories), **fields)
