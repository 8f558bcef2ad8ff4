"""Shapes of the people registry: records are frozen, inputs forbid unknown fields."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Input, Record

__all__ = (
    "MEMBER_STATUSES",
    "PERSON_FIELDS",
    "RELATION_KINDS",
    "CategoryView",
    "ImportReport",
    "Kinship",
    "LineError",
    "MemberStatus",
    "Person",
    "PersonProfile",
    "Relation",
    "RelationKind",
    "RosterRelation",
    "RosterRow",
    "SuishenLogin",
    "SuishenSession",
)

RelationKind = Literal["SPOUSE", "PARENT", "CHILD", "SIBLING_DEPENDENT", "PARENT_IN_LAW"]
MemberStatus = Literal["MARTYR", "DUTY_DEATH", "ILLNESS_DEATH", "ACTIVE"]
RELATION_KINDS: tuple[str, ...] = RelationKind.__args__
MEMBER_STATUSES: tuple[str, ...] = MemberStatus.__args__


PERSON_FIELDS = (
    "categories",
    "disability_grade",
    "disability_cause",
    "card_kind",
    "card_status",
    "card_province",
    "district",
    "birth_date",
)
"""What the rules may read of a person, in the order the roster, the table and `Person` name it."""


class _Attributes(Record):
    """The fields of `PERSON_FIELDS` after `categories`, shared by a person and a roster line."""

    disability_grade: int | None
    """1 (most severe) .. 10"""
    disability_cause: str | None
    """WAR | DUTY | ILLNESS"""
    card_kind: str
    """VETERAN_CARD | SURVIVOR_CARD | NONE"""
    card_status: str
    """ACTIVE | SUSPENDED | REVOKED | REPLACED"""
    card_province: str
    """GB/T 2260 province, 310000 = Shanghai"""
    district: str | None
    """GB/T 2260 district code"""
    birth_date: date | None


class Kinship(Record):
    """A family tie as the rules read it (`family_relation`): what the serviceman is to this person,
    what became of them, and their categories (the roster's when they are enrolled themselves;
    a serving member, status ACTIVE, is ACTIVE_SERVICE either way). No ID number."""

    relation: RelationKind
    member_status: MemberStatus
    member_categories: frozenset[str] = frozenset()


class Person(_Attributes, kw_only=True):
    """The person the rules see (docs/architecture.md). No ID number, full name or cipher text."""

    id: UUID
    name_masked: str
    """张*, 欧阳**"""
    categories: frozenset[str]
    """codes of foundation.vocabulary.CATEGORIES"""
    relations: tuple[Kinship, ...] = ()  # family ties to servicemen (the roster's `relations` column)


class Relation(Record):
    """A family tie that makes a person one of the 三属 (MARTYR, DUTY_DEATH, ILLNESS_DEATH) or a 军属 (ACTIVE)."""

    relation: RelationKind
    member_status: MemberStatus
    member_person_id: UUID | None = None
    member_name_masked: str | None = None
    since: date | None = None


class RosterRow(_Attributes, kw_only=True):
    """One validated roster line, ID number already normalised; lives only inside an import."""

    line: int
    id_number: str
    name: str
    categories: tuple[str, ...]
    relations: tuple[RosterRelation, ...] | None = None
    """None when the file has no `relations` column (the people's ties are left as they are)"""


class RosterRelation(Record):
    """One tie of a roster line: the serviceman's ID number normalised; lives only inside an import."""

    relation: RelationKind
    member_status: MemberStatus
    member_id_number: str


class LineError(Record):
    line: int
    """1-based line number in the file (the header is line 1)"""
    field: str
    message: str
    id_masked: str | None = None
    """the line's ID number, masked (`310***********1234`), to help find the line"""


class ImportReport(Record):
    """What an import did, line by line for what it refused. Never an ID number in clear."""

    imported: bool
    """True when the valid lines were written"""
    lines: int
    """data lines read (header excluded)"""
    valid: int
    rejected: int
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: tuple[LineError, ...] = ()
    errors_truncated: bool = False
    """more lines were invalid than `errors` lists"""
    seconds: float = 0.0
    # Family ties written for the first time, whose member status changed, and of the file's
    # people that the file no longer lists.
    relations_added: int = 0
    relations_updated: int = 0
    relations_removed: int = 0


class CategoryView(Record):
    code: str
    label_zh: str
    label_en: str


class PersonProfile(Record):
    """`GET /v1/me`: what the veteran sees of themselves, masked and minimised."""

    id: UUID
    name_masked: str
    id_number_masked: str
    categories: tuple[CategoryView, ...]
    district: str | None
    district_name: str | None
    card_kind: str
    card_kind_label: str
    card_status: str
    card_status_label: str
    card_province: str


class SuishenLogin(Input):
    # No length limit here: an oversized code is a bad code (the uniform 401), not a schema error.
    code: Annotated[str, msgspec.Meta(examples=["SSM1:eyJhbGciOiJFZERTQSJ9..."])]


class SuishenSession(Record):
    access_token: str
    refresh_token: str | None
    token_type: str
    expires_in: int
    person: PersonProfile
