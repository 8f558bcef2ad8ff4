"""One entry point for whatever a merchant device scans: a 崇军码 or a 随申码.

The dispatcher looks only at the prefix; each branch does its own full verification. Any input
that matches no branch is the same InvalidCode as a forgery.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from foundation.batching import StatementBatcher
from foundation.cache import MISSING, LocalCache
from foundation.structs import Record

from identity.city import CityProviders
from identity.codes import CODE_PREFIX, verify_code
from identity.errors import InvalidCode
from identity.keys import KeyRing
from identity.people import Person
from identity.people.db import PERSON_BY_ID_IN_BATCHES, PERSON_BY_INDEX_IN_BATCHES
from identity.people.service import enrolled_person_id, get_person, get_person_by_index, get_person_versioned
from identity.types import ScannedHolder, VerifiedScan

__all__ = ("MAX_SCAN_LENGTH", "PersonReads", "ScannedPerson", "resolve_scan_code", "scanned_person", "verify_scan_code")

MAX_SCAN_LENGTH = 4096
"""Longest raw scan any branch accepts; each branch applies its own tighter cap."""


async def verify_scan_code(
    raw: object, *, keyring: KeyRing, providers: CityProviders, now: datetime | float | None = None
) -> VerifiedScan:
    """Check a scanned code's signature and time, without any database: InvalidCode (forged,
    unknown prefix) or ExpiredCode. A 随申码 from the city platform (not the dev simulator) is
    verified by the platform: CityPlatformUnavailable (503) when it fails, never a guess.

    `keyring` verifies our codes, `providers` the city's (the app keeps both on `app.state`).
    `now` (a datetime or a POSIX timestamp) replaces the clock in tests. Single use of the `jti`
    is not checked here: the redemption ledger enforces it in PostgreSQL (`consumed_codes`).
    """
    if not isinstance(raw, str) or len(raw) > MAX_SCAN_LENGTH:
        raise InvalidCode("not a scan code")
    clock = now.timestamp() if isinstance(now, datetime) else now
    if raw.startswith(CODE_PREFIX):
        verified = verify_code(raw, keyring=keyring, now=clock)
        return VerifiedScan(
            jti=verified.jti, expires_at=verified.expires_at, source="cj_code",
            person_id=verified.person_id, benefit_id=verified.benefit_id,
        )
    if providers.provider_for(raw) is None:
        raise InvalidCode("unknown code prefix")
    citizen = await providers.verify(raw, now=clock)
    # Prefixed: a 随申码's jti lives in the city's namespace, not ours.
    return VerifiedScan(jti="ssm:" + citizen.jti, expires_at=citizen.expires_at, source="suishen", id_hmac=citizen.id_hmac,
                        id_hmac_alt=citizen.id_hmac_alt)


class ScannedPerson(Record):
    """The person behind a scan, as the scan decides with them."""

    person: Person
    version: str | None = None
    """their `person_version` (migration 0059) when `person` is a worker's cached copy: the ledger
    statement refuses (`stale_person`) unless it is still the same; None: read just now"""


class PersonReads:
    """The scan's person read in batches (foundation/batching.py), and kept: one per worker, on a
    pool of its own, so that a busy gate's reads share a round trip instead of paying one each,
    and a person who comes back is not read again.

    The copies follow foundation.cache's rule (b): the ledger statement that records a scan
    decided from a copy checks that the person is still exactly that version (migration 0059),
    else the scan is decided again from a fresh read. Only people whose card is active are
    kept, so a refusal for a suspended card or an unknown person is always read just now.
    """

    def __init__(self, pool: asyncpg.Pool, *, in_flight: int = 1, kept: int = 20_000, ttl: float = 300.0) -> None:
        self.by_index = StatementBatcher(pool, PERSON_BY_INDEX_IN_BATCHES, max_in_flight=in_flight, whole_row=True)
        self.by_id = StatementBatcher(pool, PERSON_BY_ID_IN_BATCHES, max_in_flight=in_flight, whole_row=True)
        self.kept: LocalCache[object, ScannedPerson] = LocalCache(maxsize=kept, ttl=ttl)
        """The copies, by person id (a 崇军码) or by blind indexes (a 随申码)."""

    async def read(self, scan: VerifiedScan, *, fresh: bool = False) -> ScannedPerson | None:
        """The person behind `scan`: the kept copy unless `fresh`, else read in a batch."""
        key: object = scan.person_id if scan.person_id is not None else (scan.id_hmac, scan.id_hmac_alt)
        if not fresh:
            copy = self.kept.lookup(key)
            if copy is not MISSING:
                return copy  # type: ignore[return-value]
        if scan.person_id is not None:
            found = await get_person_versioned(self.by_id, (scan.person_id,))
        else:
            found = await get_person_versioned(self.by_index, (scan.id_hmac, scan.id_hmac_alt))
        if found is None:
            self.kept.forget([key])
            return None
        person, version = found
        if person.card_status == "ACTIVE":
            self.kept.put(key, ScannedPerson(person, version))
        else:
            self.kept.forget([key])
        return ScannedPerson(person)


async def scanned_person(
    conn: asyncpg.Connection, scan: VerifiedScan, *, reads: PersonReads | None = None, fresh: bool = False
) -> ScannedPerson | None:
    """The enrolled person behind a verified scan, in one query; None when not in the roster.
    With `reads` the query runs in a batch with the worker's other scans' reads, and a kept copy
    is returned unless `fresh` (its `version` set: see `ScannedPerson`).

    A suspended card is returned like any other: the redemption engine answers `card_suspended`.
    """
    if reads is not None:
        return await reads.read(scan, fresh=fresh)
    if scan.person_id is not None:
        person = await get_person(conn, scan.person_id)
    else:
        person = await get_person_by_index(conn, scan.id_hmac, alt=scan.id_hmac_alt)
    return None if person is None else ScannedPerson(person)


async def resolve_scan_code(
    raw: object,
    *,
    keyring: KeyRing,
    providers: CityProviders,
    conn: asyncpg.Connection | None = None,
    now: datetime | float | None = None,
) -> ScannedHolder:
    """The holder behind a scanned code: `verify_scan_code`, then for a 随申码 the roster lookup
    by the blind index of the ID number (NotEnrolled when the citizen is not there; `conn` is
    needed for that). The scan pipeline itself uses the two halves, to fit a Redis round trip in
    between.
    """
    scan = await verify_scan_code(raw, keyring=keyring, providers=providers, now=now)
    person_id = scan.person_id
    if person_id is None:
        if conn is None:
            raise TypeError("resolve_scan_code needs `conn` to resolve a 随申码")
        person_id = await enrolled_person_id(conn, scan.id_hmac, alt=scan.id_hmac_alt, refuse_suspended=False)
    return ScannedHolder(
        person_id=person_id, jti=scan.jti, expires_at=scan.expires_at, source=scan.source, benefit_id=scan.benefit_id
    )
