"""Rules of the people registry: who a person is to the rules, and what they see of themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from uuid import UUID

import asyncpg

from foundation.batching import StatementBatcher
from foundation.settings import Settings
from foundation.vocabulary import CARD_KINDS, CARD_STATUSES, CATEGORIES, SHANGHAI_DISTRICTS
from identity.people import db
from identity.people.errors import CardSuspended, NotEnrolled, PersonNotFound
from identity.people.types import PERSON_FIELDS, CategoryView, Kinship, Person, PersonProfile, Relation
from identity.pii import PiiVault

__all__ = (
    "REFUSED_CARD_STATUSES",
    "add_relation",
    "enrolled_person_id",
    "get_person",
    "get_person_by_index",
    "get_person_versioned",
    "get_profile",
    "iter_people",
    "list_relations",
    "masked_name_of",
    "pii_vault",
)

REFUSED_CARD_STATUSES = frozenset({"SUSPENDED", "REVOKED"})
"""A card in one of these states gets no session and no benefit (card-suspended)."""


@cache
def _vault(secrets_dir: Path, production: bool, profile: str) -> PiiVault:
    from identity.secrets import SecretStore

    return PiiVault.from_secrets(SecretStore(secrets_dir, production=production), profile=profile)


def pii_vault(settings: Settings) -> PiiVault:
    """The process's vault for these settings (secrets read once; production never invents them);
    it seals with the crypto profile's cipher (gm: SM4-GCM) and opens either."""
    return _vault(settings.resolved_secrets_dir.resolve(), settings.is_production, settings.crypto_profile)


_SERVING = frozenset({"ACTIVE_SERVICE"})


def _kinship(relation: str, member_status: str, member_categories: list[str]) -> Kinship:
    categories = frozenset(member_categories)
    return Kinship(relation, member_status, categories | _SERVING if member_status == "ACTIVE" else categories)


def _person(row: asyncpg.Record) -> Person:
    return Person(
        id=row["id"],
        name_masked=row["name_masked"],
        categories=frozenset(row["categories"]),
        relations=tuple(_kinship(*tie) for tie in sorted(row["relations"])),
        **{field: row[field] for field in PERSON_FIELDS[1:]},
    )


async def get_person(conn: asyncpg.Connection, person_id: UUID) -> Person | None:
    """The person with this id."""
    row = await db.get_person_row(conn, person_id)
    return None if row is None else _person(row)


async def get_person_versioned(batches: StatementBatcher, args: tuple) -> tuple[Person, str] | None:
    """A person and their `person_version` (migration 0059), read in a batch of `PersonReads`
    (`args`: the person's id, or their blind index and the other profile's or None)."""
    row = await db.get_person_row_batched(batches, args)
    return None if row is None else (_person(row), row["version"])


async def iter_people(conn: asyncpg.Connection, *, batch: int = 5000) -> AsyncIterator[Person]:
    """Every person of the roster, in id order, read `batch` at a time (statistics over the roster)."""
    after = None
    while True:
        rows = await db.person_rows_after(conn, after, limit=batch)
        for row in rows:
            yield _person(row)
        if len(rows) < batch:
            return
        after = rows[-1]["id"]


def _indexes(id_hmac: bytes, alt: bytes | None) -> list[bytes]:
    return [id_hmac] if alt is None else [id_hmac, alt]


async def get_person_by_index(conn: asyncpg.Connection, id_hmac: bytes, *, alt: bytes | None = None) -> Person | None:
    """The person with this blind index of the ID number, or with `alt` (the other crypto profile's
    index: enrolled before a switch and not re-imported since); None when not in the roster."""
    row = await db.get_person_row_by_hmac(conn, _indexes(id_hmac, alt))
    return None if row is None else _person(row)


async def enrolled_person_id(
    conn: asyncpg.Connection, id_hmac: bytes, *, alt: bytes | None = None, refuse_suspended: bool = True
) -> UUID:
    """The person behind a blind index (or `alt`): NotEnrolled if none, CardSuspended if their card is."""
    row = await db.find_person_id_by_hmac(conn, _indexes(id_hmac, alt))
    if row is None:
        raise NotEnrolled()
    if refuse_suspended and row["card_status"] in REFUSED_CARD_STATUSES:
        raise CardSuspended()
    return row["id"]


async def masked_name_of(conn: asyncpg.Connection, id_hmac: bytes) -> str | None:
    """The masked name of the enrolled person with this blind index (None if not enrolled)."""
    return await db.name_masked_by_hmac(conn, id_hmac)


async def get_profile(conn: asyncpg.Connection, person_id: UUID) -> PersonProfile:
    """What `GET /v1/me` shows: masked and minimised (no ID number, full name or birth date)."""
    row = await db.get_profile_row(conn, person_id)
    if row is None:
        raise PersonNotFound()
    return PersonProfile(
        id=row["id"],
        name_masked=row["name_masked"],
        id_number_masked=row["id_masked"],
        categories=tuple(
            CategoryView(code=code, label_zh=CATEGORIES[code][0], label_en=CATEGORIES[code][1])
            for code in row["categories"]
            if code in CATEGORIES
        ),
        district=row["district"],
        district_name=SHANGHAI_DISTRICTS[row["district"]][0] if row["district"] in SHANGHAI_DISTRICTS else None,
        card_kind=row["card_kind"],
        card_kind_label=CARD_KINDS[row["card_kind"]][0],
        card_status=row["card_status"],
        card_status_label=CARD_STATUSES[row["card_status"]][0],
        card_province=row["card_province"],
    )


async def add_relation(conn: asyncpg.Connection, person_id: UUID, relation: Relation) -> None:
    await db.insert_relation(
        conn,
        person_id=person_id,
        relation=relation.relation,
        member_status=relation.member_status,
        member_person_id=relation.member_person_id,
        member_name_masked=relation.member_name_masked,
        since=relation.since,
    )


async def list_relations(conn: asyncpg.Connection, person_id: UUID) -> list[Relation]:
    return [
        Relation(
            relation=row["relation"],
            member_status=row["member_status"],
            member_person_id=row["member_person_id"],
            member_name_masked=row["member_name_masked"],
            since=row["since"],
        )
        for row in await db.list_relations(conn, person_id)
    ]
