"""SQL of the people registry: one function per query; a missing row returns None."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg

from foundation.batching import StatementBatcher
from identity.people.types import PERSON_FIELDS

__all__ = (
    "STAGE_COLUMNS",
    "count_people",
    "create_stage",
    "existing_by_hmac",
    "find_person_id_by_hmac",
    "get_person_row",
    "get_person_row_by_hmac",
    "get_profile_row",
    "insert_relation",
    "list_relations",
    "person_rows_after",
    "lock_roster",
    "replace_roster_relations",
    "name_masked_by_hmac",
    "stage_rows",
    "upsert_from_stage",
)

# A person's family ties ride along in the same query (rules read them: `family_relation`), each
# as [relation, member_status, member's categories]; the member is found by person id (ties
# entered by an admin) or by the blind index of their ID number (ties from the roster), and has
# no categories when not enrolled.
_RELATIONS = """(SELECT coalesce(jsonb_agg(jsonb_build_array(r.relation, r.member_status,
                                                   coalesce(by_id.categories, by_index.categories, '{}'))), '[]')
       FROM person_relations r
       LEFT JOIN people by_id ON by_id.id = r.member_person_id
       LEFT JOIN people by_index ON by_index.id_hmac = r.member_id_hmac
      WHERE r.person_id = people.id) AS relations"""
_PERSON_COLUMNS = ", ".join(("id", "name_masked", *PERSON_FIELDS, _RELATIONS))

# Imports take this transaction-scoped advisory lock: one roster import at a time, so the row
# ids chosen for new people (and bound into their sealed blobs) cannot race another import.
_ROSTER_LOCK = 0x63_6A_72_6F_73_74  # "cjrost"

STAGE_COLUMNS = ("id", "id_hmac", "id_sealed", "name_sealed", "seal_version", "id_masked", "name_masked", *PERSON_FIELDS)


async def get_person_row(conn: asyncpg.Connection, person_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_PERSON_COLUMNS} FROM people WHERE id = $1", person_id)


async def person_rows_after(conn: asyncpg.Connection, after: UUID | None, *, limit: int) -> list[asyncpg.Record]:
    """People in id order after `after` (None: from the start), `limit` at a time."""
    return await conn.fetch(
        f"SELECT {_PERSON_COLUMNS} FROM people WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2", after, limit
    )


# The scan's person read (every 随申码 scan runs it). The one or two indexes are two scalar
# parameters joined as a VALUES list, not `id_hmac = ANY($1::bytea[])`: PostgreSQL's generic plan
# of the array form guesses ten matching rows (and so ten runs of the family-ties sub-select), so
# its plan cache kept planning the statement afresh on every execution, and planning four
# relations cost about four times the query itself (measured: ~150 us of backend CPU against ~35
# us with the generic plan, pgperson.py in the note of issue 16). Here the generic plan
# costs exactly what a custom one does, so it is kept after the first executions.
_PERSON_BY_INDEX = f"""
SELECT {_PERSON_COLUMNS} FROM (
    SELECT people.* FROM (VALUES (1, $1::bytea), (2, $2::bytea)) AS wanted (rank, id_hmac)
    JOIN people ON people.id_hmac = wanted.id_hmac
    ORDER BY wanted.rank LIMIT 1
) AS people"""


# The same reads for `StatementBatcher` (identity.PersonReads): exactly one row a call, all NULL
# when no one matches, with the person's `person_version` (migration 0059), which the ledger
# statement compares when the scan was decided from a cached copy.
PERSON_BY_INDEX_IN_BATCHES = f"""SELECT people.* FROM (SELECT) AS one LEFT JOIN LATERAL (
    SELECT found.*, person_version(found.id) AS version FROM ({_PERSON_BY_INDEX}) AS found
) AS people ON true"""
PERSON_BY_ID_IN_BATCHES = f"""SELECT people.* FROM (SELECT) AS one LEFT JOIN LATERAL (
    SELECT {_PERSON_COLUMNS}, person_version(people.id) AS version FROM people WHERE id = $1
) AS people ON true"""


async def get_person_row_by_hmac(conn: asyncpg.Connection, indexes: Sequence[bytes]) -> asyncpg.Record | None:
    """The row whose index is one of `indexes` (one or two; the first one preferred)."""
    if not 1 <= len(indexes) <= 2:
        raise ValueError("one or two blind indexes")
    return await conn.fetchrow(_PERSON_BY_INDEX, indexes[0], indexes[1] if len(indexes) == 2 else None)


async def get_person_row_batched(batches: StatementBatcher, args: tuple) -> asyncpg.Record | None:
    """A row of `PERSON_BY_ID_IN_BATCHES` (`args`: the id) or `PERSON_BY_INDEX_IN_BATCHES` (the
    blind index and the other profile's, or None), read in a batch; None when no one matches."""
    row = await batches.run(args)
    return None if row["id"] is None else row


async def get_profile_row(conn: asyncpg.Connection, person_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_PERSON_COLUMNS}, id_masked FROM people WHERE id = $1", person_id)


async def find_person_id_by_hmac(conn: asyncpg.Connection, indexes: Sequence[bytes]) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, card_status FROM people WHERE id_hmac = ANY($1::bytea[]) ORDER BY id_hmac = ($1::bytea[])[1] DESC LIMIT 1",
        list(indexes),
    )


async def name_masked_by_hmac(conn: asyncpg.Connection, id_hmac: bytes) -> str | None:
    return await conn.fetchval("SELECT name_masked FROM people WHERE id_hmac = $1", id_hmac)


async def count_people(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM people")


async def lock_roster(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _ROSTER_LOCK)


async def reindex(conn: asyncpg.Connection, old: Sequence[bytes], new: Sequence[bytes]) -> int:
    """Rows enrolled under `old[i]` (the other crypto profile's index) move to `new[i]`; how many."""
    result = await conn.execute(
        "UPDATE people p SET id_hmac = m.new FROM unnest($1::bytea[], $2::bytea[]) AS m(old, new)"
        " WHERE p.id_hmac = m.old AND NOT EXISTS (SELECT 1 FROM people q WHERE q.id_hmac = m.new)",
        list(old), list(new),
    )
    return int(result.split()[-1])


async def existing_by_hmac(conn: asyncpg.Connection, hmacs: Sequence[bytes]) -> list[asyncpg.Record]:
    """The rows already enrolled among `hmacs`: their id and blobs (an unchanged value keeps its blob)."""
    return await conn.fetch(
        "SELECT id, id_hmac, id_sealed, name_sealed, seal_version FROM people WHERE id_hmac = ANY($1::bytea[])", list(hmacs)
    )


async def create_stage(conn: asyncpg.Connection) -> None:
    # Dropped at commit (or rollback): the stage never outlives the import's transaction.
    await conn.execute(
        """
        CREATE TEMP TABLE roster_stage (LIKE people INCLUDING DEFAULTS) ON COMMIT DROP;
        ALTER TABLE roster_stage DROP COLUMN source, DROP COLUMN created_at, DROP COLUMN updated_at;
        """
    )


async def stage_rows(conn: asyncpg.Connection, records: Iterable[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table("roster_stage", records=records, columns=STAGE_COLUMNS)


async def upsert_from_stage(conn: asyncpg.Connection) -> asyncpg.Record:
    """Insert new people and update changed ones: (inserted, updated, refused_ids).

    Unchanged rows are left alone; `refused_ids` are the updated people whose card is now
    suspended or revoked (their sessions must end).
    """
    return await conn.fetchrow(
        """
        WITH written AS (
            INSERT INTO people (id, id_hmac, id_sealed, name_sealed, seal_version, id_masked, name_masked,
                                categories, disability_grade, disability_cause, card_kind, card_status,
                                card_province, district, birth_date)
            SELECT id, id_hmac, id_sealed, name_sealed, seal_version, id_masked, name_masked,
                   categories, disability_grade, disability_cause, card_kind, card_status,
                   card_province, district, birth_date
            FROM roster_stage
            ON CONFLICT (id_hmac) DO UPDATE SET
                name_sealed = EXCLUDED.name_sealed,
                id_sealed = EXCLUDED.id_sealed,
                seal_version = EXCLUDED.seal_version,
                name_masked = EXCLUDED.name_masked,
                categories = EXCLUDED.categories,
                disability_grade = EXCLUDED.disability_grade,
                disability_cause = EXCLUDED.disability_cause,
                card_kind = EXCLUDED.card_kind,
                card_status = EXCLUDED.card_status,
                card_province = EXCLUDED.card_province,
                district = EXCLUDED.district,
                birth_date = EXCLUDED.birth_date,
                updated_at = now()
            WHERE (people.id_sealed, people.name_sealed, people.seal_version, people.name_masked, people.categories,
                   people.disability_grade, people.disability_cause, people.card_kind, people.card_status,
                   people.card_province, people.district, people.birth_date)
                  IS DISTINCT FROM
                  (EXCLUDED.id_sealed, EXCLUDED.name_sealed, EXCLUDED.seal_version, EXCLUDED.name_masked, EXCLUDED.categories,
                   EXCLUDED.disability_grade, EXCLUDED.disability_cause, EXCLUDED.card_kind, EXCLUDED.card_status,
                   EXCLUDED.card_province, EXCLUDED.district, EXCLUDED.birth_date)
            RETURNING id, (xmax = 0) AS inserted, card_status
        )
        SELECT count(*) FILTER (WHERE inserted) AS inserted,
               count(*) FILTER (WHERE NOT inserted) AS updated,
               coalesce(array_agg(id) FILTER (WHERE NOT inserted AND card_status IN ('SUSPENDED', 'REVOKED')),
                        '{}') AS refused_ids
        FROM written
        """
    )


async def replace_roster_relations(
    conn: asyncpg.Connection, person_hmacs: Sequence[bytes], ties: Iterable[tuple[bytes, str, str, bytes]]
) -> asyncpg.Record:
    """Make the roster's ties of these people exactly `ties` (person's index, relation, member
    status, member's index): (added, updated, removed). Ties an admin entered are left alone."""
    await conn.execute(
        "CREATE TEMP TABLE roster_relation_stage (person_hmac bytea, relation text, member_status text,"
        " member_id_hmac bytea) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "roster_relation_stage", records=ties, columns=("person_hmac", "relation", "member_status", "member_id_hmac")
    )
    return await conn.fetchrow(
        """
        WITH wanted AS (
            SELECT p.id AS person_id, s.relation, s.member_status, s.member_id_hmac
              FROM roster_relation_stage s JOIN people p ON p.id_hmac = s.person_hmac
        ), removed AS (
            DELETE FROM person_relations r
             USING people p
             WHERE r.person_id = p.id AND p.id_hmac = ANY($1::bytea[]) AND r.source = 'roster'
               AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.person_id = r.person_id AND w.relation = r.relation
                                                        AND w.member_id_hmac = r.member_id_hmac)
            RETURNING 1
        ), written AS (
            INSERT INTO person_relations (person_id, relation, member_status, member_id_hmac, source)
            SELECT person_id, relation, member_status, member_id_hmac, 'roster' FROM wanted
            ON CONFLICT (person_id, relation, member_id_hmac) WHERE source = 'roster'
            DO UPDATE SET member_status = EXCLUDED.member_status
            WHERE person_relations.member_status IS DISTINCT FROM EXCLUDED.member_status
            RETURNING (xmax = 0) AS inserted
        )
        SELECT (SELECT count(*) FROM written WHERE inserted) AS added,
               (SELECT count(*) FROM written WHERE NOT inserted) AS updated,
               (SELECT count(*) FROM removed) AS removed
        """,
        list(person_hmacs),
    )


async def insert_relation(
    conn: asyncpg.Connection,
    *,
    person_id: UUID,
    relation: str,
    member_status: str,
    member_person_id: UUID | None,
    member_name_masked: str | None,
    since: date | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO person_relations (person_id, relation, member_status, member_person_id, member_name_masked, since)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT DO NOTHING
        """,
        person_id,
        relation,
        member_status,
        member_person_id,
        member_name_masked,
        since,
    )


async def list_relations(conn: asyncpg.Connection, person_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT relation, member_status, member_person_id, member_name_masked, since
        FROM person_relations WHERE person_id = $1 ORDER BY created_at, id
        """,
        person_id,
    )
