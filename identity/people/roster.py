"""The bureau's roster: CSV parsing and validation, the bulk import, and a synthetic roster.

An import is one transaction: every line is validated first, and by default a single bad line
refuses the whole file (nothing written, a line-numbered report). The valid lines are staged
with COPY into a temporary table and merged with one `INSERT ... ON CONFLICT (id_hmac)`, so a
re-import of the same file changes nothing and a corrected file updates the people in place.
No report, log line or exception ever carries an ID number in clear.

An optional last column, `relations`, lists the line's family ties to servicemen (军属, 三属):
`KIND:ID_NUMBER` or `KIND:ID_NUMBER:STATUS`, several separated by `|`, where KIND is SPOUSE,
PARENT, CHILD, SIBLING_DEPENDENT or PARENT_IN_LAW and STATUS what became of the serviceman
(ACTIVE, the default, MARTYR, DUTY_DEATH or ILLNESS_DEATH). The serviceman's number is stored
as its blind index only. When the file has the column, each of its people's roster ties become
exactly the ones listed (an empty cell removes them); a file without it leaves ties alone.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date, timedelta
from hashlib import sha256

import asyncpg
import msgspec

from foundation.audit import write_audit
from foundation.outbox import write_event
from foundation.vocabulary import (
    CARD_KINDS,
    CARD_STATUSES,
    CATEGORIES,
    DISABILITY_CAUSES,
    SHANGHAI_DISTRICTS,
    SHANGHAI_PROVINCE,
    SURVIVOR_CATEGORIES,
    VETERAN_SUBKINDS,
    district_code,
)
from identity.people import db
from identity.people.errors import RosterEncoding, RosterRejected
from identity.people.types import (
    MEMBER_STATUSES,
    PERSON_FIELDS,
    RELATION_KINDS,
    ImportReport,
    LineError,
    RosterRelation,
    RosterRow,
)
from identity.pii import InvalidIdNumber, PiiVault, birth_date_of, id_checksum_char, mask_id_number, mask_name, normalise_id_number

__all__ = (
    "MAX_REPORTED_ERRORS",
    "RELATIONS_COLUMN",
    "ROSTER_COLUMNS",
    "Progress",
    "decode_roster",
    "import_roster",
    "parse_roster",
    "synthetic_roster",
    "synthetic_roster_csv",
)

ROSTER_COLUMNS = ("id_number", "name", *PERSON_FIELDS)
RELATIONS_COLUMN = "relations"
"""The optional column after ROSTER_COLUMNS: the line's family ties (see the module's docstring)."""
MAX_REPORTED_ERRORS = 1000
"""A report lists at most this many bad lines (and says when it stopped)."""

Progress = Callable[[str, int, int], None]
"""`progress(phase, done, total)`; phases: `validate`, `seal`, `write`."""

_CAUSE_ALIASES = {**{code: code for code in DISABILITY_CAUSES}, **{zh: code for code, (zh, _) in DISABILITY_CAUSES.items()}}
_CARD_KIND_ALIASES = {**{code: code for code in CARD_KINDS}, "": "NONE"}
_CARD_STATUS_ALIASES = {
    **{code: code for code in CARD_STATUSES},
    **{zh: code for code, (zh, _) in CARD_STATUSES.items()},
    "": "ACTIVE",
}
_NAME_FORBIDDEN = set("0123456789<>{}[]\\/@#$%^&*=+|;:\"")
_PROGRESS_STEP = 5000
_AUDITED_COUNTS = (
    "lines", "valid", "rejected", "inserted", "updated", "unchanged", "relations_added", "relations_updated",
    "relations_removed",
)
"""What the audit entry of an import records: its counts (never a line of the file)."""


# C0 controls other than tab, LF and CR, and DEL: no roster line holds one, while UTF-16 without
# a BOM read as UTF-8 is every other character NUL, and an .xlsx or random bytes are full of them.
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def decode_roster(data: bytes) -> str:
    """The roster's text: UTF-8 (with or without the BOM Excel writes), UTF-16 with its BOM
    (Excel's "Unicode text"), or GB 18030 for files saved by Chinese Excel; RosterEncoding for
    bytes that are none of them."""
    try:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = data.decode("utf-16")
        else:
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = data.decode("gb18030")
    except UnicodeDecodeError:
        raise RosterEncoding() from None
    return _readable(text)


def _readable(text: str) -> str:
    found = _NOT_TEXT.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise RosterEncoding(
            f"line {line} holds a control character (U+{ord(found.group()):04X}): the file is not CSV text in "
            "UTF-8, GB 18030 or UTF-16 with a BOM (UTF-16 without a BOM reads like this); nothing was imported"
        )
    return text


class _Errors:
    """The errors of one file: every bad line is counted, the first MAX_REPORTED_ERRORS listed."""

    def __init__(self) -> None:
        self.items: list[LineError] = []
        self.lines: set[int] = set()
        self.dropped = 0

    def add(self, line: int, field: str, message: str, id_masked: str | None) -> None:
        self.lines.add(line)
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(LineError(line=line, field=field, message=message, id_masked=id_masked))
        else:
            self.dropped += 1


def _parse_date(value: str) -> date | None:
    value = value.strip()
    for text in (value, value.replace("/", "-").replace(".", "-")):
        try:
            if len(text) == 8 and text.isdigit():
                return date(int(text[:4]), int(text[4:6]), int(text[6:]))
            return date.fromisoformat(text)
        except ValueError:
            continue
    return None


_RELATION_FORM = "a relation is KIND:ID_NUMBER or KIND:ID_NUMBER:STATUS, several separated by |"


def _relations(
    text: str, id_number: str | None, today: date, fail: Callable[[str, str], None]
) -> tuple[RosterRelation, ...]:
    """The ties of one `relations` cell; each bad one is reported (never with its ID number)."""
    ties: list[RosterRelation] = []
    for position, item in enumerate((part.strip() for part in text.split("|")), 1):
        if not item:
            continue
        parts = [part.strip() for part in item.split(":")]
        where = f"relation {position}"
        if len(parts) not in (2, 3):
            fail("relations", f"{where}: {_RELATION_FORM}")
            continue
        kind, member = parts[0].upper(), parts[1]
        status = parts[2].upper() if len(parts) == 3 and parts[2] else "ACTIVE"
        if kind not in RELATION_KINDS:
            fail("relations", f"{where}: unknown relation {kind[:30]!r}; one of " + ", ".join(RELATION_KINDS))
            continue
        if status not in MEMBER_STATUSES:
            fail("relations", f"{where}: unknown member status {status[:30]!r}; one of " + ", ".join(MEMBER_STATUSES))
            continue
        if not member:
            fail("relations", f"{where}: the serviceman's ID number is missing")
            continue
        try:
            member = normalise_id_number(member, today=today)
        except InvalidIdNumber as exc:
            fail("relations", f"{where}: the serviceman's ID number: {exc.detail}")
            continue
        if member == id_number:
            fail("relations", f"{where}: a person is not their own relative")
            continue
        if any(tie.relation == kind and tie.member_id_number == member for tie in ties):
            fail("relations", f"{where}: the same tie is listed twice")
            continue
        ties.append(RosterRelation(relation=kind, member_status=status, member_id_number=member))
    return tuple(ties)


def _validate_line(number: int, fields: list[str], today: date, errors: _Errors) -> RosterRow | None:
    values = dict(zip(ROSTER_COLUMNS, (field.strip() for field in fields[: len(ROSTER_COLUMNS)]), strict=True))
    raw_id = values["id_number"]
    masked = mask_id_number(raw_id) if raw_id else None
    before = len(errors.lines), len(errors.items)

    def fail(field: str, message: str) -> None:
        errors.add(number, field, message, masked)

    id_number = None
    try:
        id_number = normalise_id_number(raw_id, today=today)
        masked = mask_id_number(id_number)
    except InvalidIdNumber as exc:
        fail("id_number", exc.detail if raw_id else "missing")

    name = values["name"]
    if not name:
        fail("name", "missing")
    elif len(name) > 50 or any(char in _NAME_FORBIDDEN or not char.isprintable() for char in name):
        fail("name", "a name has at most 50 letters and no digits or symbols")

    categories: list[str] = []
    for code in values["categories"].split("|"):
        code = code.strip().upper()
        if not code:
            continue
        if code not in CATEGORIES:
            fail("categories", f"unknown category {code[:40]!r}")
        elif code not in categories:
            categories.append(code)
    if not values["categories"].strip("| "):
        fail("categories", "at least one category is needed")

    grade = None
    if values["disability_grade"]:
        text = values["disability_grade"].removesuffix("级")
        if text.isdigit() and 1 <= int(text) <= 10:
            grade = int(text)
        else:
            fail("disability_grade", "a disability grade is 1 to 10")
    cause = None
    if values["disability_cause"]:
        cause = _CAUSE_ALIASES.get(values["disability_cause"].upper())
        if cause is None:
            fail("disability_cause", "WAR, DUTY or ILLNESS (因战, 因公, 因病)")
    disabled = "DISABLED_SERVICEMAN" in categories
    if disabled and (not values["disability_grade"] or not values["disability_cause"]):
        fail("disability_grade", "a disabled serviceman needs a disability grade and cause")
    if not disabled and (values["disability_grade"] or values["disability_cause"]):
        fail("disability_grade", "a disability grade and cause need the category DISABLED_SERVICEMAN")

    card_kind = _CARD_KIND_ALIASES.get(values["card_kind"].upper())
    if card_kind is None:
        fail("card_kind", "VETERAN_CARD, SURVIVOR_CARD or NONE")
    card_status = _CARD_STATUS_ALIASES.get(values["card_status"].upper())
    if card_status is None:
        fail("card_status", "ACTIVE, SUSPENDED, REVOKED or REPLACED")
    card_province = values["card_province"] or SHANGHAI_PROVINCE
    if not (len(card_province) == 6 and card_province.isdigit() and card_province.endswith("0000") and card_province[0] != "0"):
        fail("card_province", "a GB/T 2260 province code such as 310000")

    district = None
    if values["district"]:
        district = district_code(values["district"])
        if district is None:
            fail("district", "a Shanghai district: GB/T 2260 code (310115) or name (浦东新区)")

    birth = None
    if values["birth_date"]:
        birth = _parse_date(values["birth_date"])
        if birth is None or birth > today:
            fail("birth_date", "a date such as 1960-05-01")
        elif id_number is not None and birth != birth_date_of(id_number):
            fail("birth_date", "does not match the birth date in the ID number")
    elif id_number is not None:
        birth = birth_date_of(id_number)

    relations = None
    if len(fields) > len(ROSTER_COLUMNS):
        relations = _relations(fields[len(ROSTER_COLUMNS)], id_number, today, fail)

    if (len(errors.lines), len(errors.items)) != before or id_number is None:
        return None
    return RosterRow(
        relations=relations,
        line=number,
        id_number=id_number,
        name=name,
        categories=tuple(categories),
        disability_grade=grade,
        disability_cause=cause,
        card_kind=card_kind,
        card_status=card_status,
        card_province=card_province,
        district=district,
        birth_date=birth,
    )


def _records(reader, errors: _Errors) -> Iterator[list[str]]:
    """The reader's records; a line the csv module cannot read (a field over its size limit, an
    unterminated quote) is reported as that line's error and ends the reading there."""
    try:
        yield from reader
    except csv.Error as exc:
        # csv's messages name the problem, never the field's content.
        errors.add(reader.line_num, "line", f"not readable as CSV ({exc}); nothing after it was read", None)


def parse_roster(
    text: str, *, today: date | None = None, progress: Progress | None = None
) -> tuple[list[RosterRow], list[LineError], int, int, bool]:
    """Validate every line: (valid rows, errors, data lines read, bad lines, errors truncated).

    Line numbers are those of the file (header = line 1). A repeated ID number is an error on
    every line after its first.
    """
    today = today or date.today()
    errors = _Errors()
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error:
        header = None
    columns = None if header is None else tuple(column.strip().lstrip("\ufeff").lower() for column in header)
    if columns not in (ROSTER_COLUMNS, (*ROSTER_COLUMNS, RELATIONS_COLUMN)):
        errors.add(1, "header", "the header must be: " + ",".join(ROSTER_COLUMNS) + f" (and optionally ,{RELATIONS_COLUMN})", None)
        return [], errors.items, 0, 1, False
    total_estimate = max(text.count("\n"), 1)
    rows: list[RosterRow] = []
    first_line: dict[str, int] = {}
    lines = 0
    for fields in _records(reader, errors):
        number = reader.line_num
        if not fields or all(not field.strip() for field in fields):
            continue
        lines += 1
        if len(fields) != len(columns):
            errors.add(number, "line", f"expected {len(columns)} fields, found {len(fields)}", None)
            continue
        row = _validate_line(number, fields, today, errors)
        if row is not None:
            seen = first_line.setdefault(row.id_number, number)
            if seen != number:
                errors.add(number, "id_number", f"the same person as line {seen}", mask_id_number(row.id_number))
                continue
            rows.append(row)
        if progress and lines % _PROGRESS_STEP == 0:
            progress("validate", lines, total_estimate)
    if progress:
        progress("validate", lines, lines)
    return rows, errors.items, lines, len(errors.lines), errors.dropped > 0


def _stage_records(
    rows: list[RosterRow], vault: PiiVault, existing: dict[bytes, asyncpg.Record], hmacs: list[bytes],
    progress: Progress | None,
) -> Iterator[tuple]:
    """One COPY record per row; an unchanged value keeps its blob (no new nonce spent on it)."""
    version = vault.current_version
    for done, (row, index) in enumerate(zip(rows, hmacs, strict=True), 1):
        old = existing.get(index)
        if old is not None and old["seal_version"] == version and vault.is_current(bytes(old["id_sealed"])):
            person_id = old["id"]
            id_sealed = old["id_sealed"]
            name_sealed = old["name_sealed"]
            if vault.open(name_sealed, table="people", column="name", row=person_id) != row.name:
                name_sealed = vault.seal(row.name, table="people", column="name", row=person_id)
        else:
            # New, or sealed under an older key: seal both under the current one.
            person_id = old["id"] if old is not None else uuid.uuid4()
            id_sealed = vault.seal(row.id_number, table="people", column="id_number", row=person_id)
            name_sealed = vault.seal(row.name, table="people", column="name", row=person_id)
        if progress and done % _PROGRESS_STEP == 0:
            progress("seal", done, len(rows))
        yield (
            person_id,
            index,
            id_sealed,
            name_sealed,
            version,
            mask_id_number(row.id_number),
            mask_name(row.name),
            list(row.categories),
            row.disability_grade,
            row.disability_cause,
            row.card_kind,
            row.card_status,
            row.card_province,
            row.district,
            row.birth_date,
        )


async def import_roster(
    conn: asyncpg.Connection,
    vault: PiiVault,
    data: bytes | str,
    *,
    valid_only: bool = False,
    actor_kind: str = "system",
    actor_id: str = "cli",
    today: date | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Validate and import a roster CSV; RosterRejected (nothing written) when a line is bad,
    RosterEncoding when the bytes are not text in an encoding we read.

    With `valid_only` the valid lines are imported and the bad ones reported. Runs in one
    transaction (a savepoint inside the caller's, if there is one) under the roster lock.
    """
    started = time.perf_counter()
    text = decode_roster(data) if isinstance(data, bytes) else _readable(data)
    rows, errors, lines, rejected, truncated = parse_roster(text, today=today, progress=progress)
    report = ImportReport(
        imported=False,
        lines=lines,
        valid=len(rows),
        rejected=rejected,
        errors=tuple(errors),
        errors_truncated=truncated,
    )
    if errors and (not valid_only or not rows):
        raise RosterRejected(report)
    inserted = updated = 0
    ties = {"added": 0, "updated": 0, "removed": 0}
    async with conn.transaction():
        await db.lock_roster(conn)
        hmacs = [vault.blind_index(row.id_number) for row in rows]
        # A row enrolled under the other crypto profile's index takes this profile's first, so the
        # merge below finds it (identity.pii: the index across a profile switch).
        if rows:
            await db.reindex(conn, [vault.other_index(row.id_number) for row in rows], hmacs)
        existing = {record["id_hmac"]: record for record in await db.existing_by_hmac(conn, hmacs)} if rows else {}
        if rows:
            await db.create_stage(conn)
            records = list(_stage_records(rows, vault, existing, hmacs, progress))
            if progress:
                progress("write", 0, len(rows))
            await db.stage_rows(conn, records)
            written = await db.upsert_from_stage(conn)
            inserted, updated = written["inserted"], written["updated"]
            if written["refused_ids"]:
                # A card just suspended or revoked ends the holder's sessions (refresh tokens).
                from identity.sessions import revoke_subject_sessions

                for person_id in written["refused_ids"]:
                    await revoke_subject_sessions(conn, person_id, redis=None)
            listed = [(row, index) for row, index in zip(rows, hmacs, strict=True) if row.relations is not None]
            if listed:
                ties = await db.replace_roster_relations(
                    conn,
                    [index for _, index in listed],
                    [
                        (index, tie.relation, tie.member_status, vault.blind_index(tie.member_id_number))
                        for row, index in listed
                        for tie in row.relations
                    ],
                )
            if progress:
                progress("write", len(rows), len(rows))
        report = msgspec.structs.replace(
            report,
            imported=True,
            inserted=inserted,
            updated=updated,
            unchanged=len(rows) - inserted - updated,
            relations_added=ties["added"],
            relations_updated=ties["updated"],
            relations_removed=ties["removed"],
            seconds=round(time.perf_counter() - started, 3),
        )
        await write_audit(
            conn,
            actor_kind=actor_kind,
            actor_id=actor_id,
            action="people.import",
            object_kind="roster",
            object_id=sha256(text.encode()).hexdigest()[:32],
            district=None,
            detail={
                **{count: getattr(report, count) for count in _AUDITED_COUNTS},
                "sha256": sha256(text.encode()).hexdigest(),
            },
        )
        # Issue 13: the import's summary (counts only) reaches the data center.
        await write_event(
            conn, "roster.imported",
            {"roster_digest": sha256(text.encode()).hexdigest()[:32], "lines": lines, "valid": len(rows),
             "rejected": rejected, "inserted": inserted, "updated": updated, "unchanged": report.unchanged,
             "valid_only": valid_only},
        )
    return report


# --- synthetic roster -------------------------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_COMPOUND = ("欧阳", "司马", "上官", "诸葛", "东方", "慕容")
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉玲建国志红文斌宇浩凯健俊峰海燕雪梅琳晨"
_OTHER_PROVINCE_REGIONS = ("320102", "330106", "110101", "370102", "420102", "510104", "440106")
_DISTRICT_CODES = tuple(SHANGHAI_DISTRICTS)
_SUBKINDS = tuple(sorted(VETERAN_SUBKINDS))
_SURVIVORS = tuple(sorted(SURVIVOR_CATEGORIES))


def _synthetic_person(rng: random.Random, today: date) -> dict[str, str]:
    shanghai = rng.random() < 0.9
    district = rng.choice(_DISTRICT_CODES)
    region = district if shanghai else rng.choice(_OTHER_PROVINCE_REGIONS)
    born = date(1930, 1, 1) + timedelta(days=rng.randrange((date(2004, 12, 31) - date(1930, 1, 1)).days))
    first17 = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    id_number = first17 + id_checksum_char(first17)
    surname = rng.choice(_COMPOUND) if rng.random() < 0.03 else rng.choice(_SURNAMES)
    name = surname + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))

    roll = rng.random()
    grade = cause = ""
    card_kind = "VETERAN_CARD"
    if roll < 0.70:
        categories = ["VETERAN"]
        if rng.random() < 0.5:
            categories.append(rng.choice(_SUBKINDS))
    elif roll < 0.82:
        categories = ["VETERAN", "DISABLED_SERVICEMAN"]
        grade = str(rng.randint(1, 10))
        cause = rng.choice(("WAR", "DUTY", "ILLNESS"))
    elif roll < 0.92:
        categories = [rng.choice(_SURVIVORS)]
        card_kind = "SURVIVOR_CARD"
    elif roll < 0.97:
        categories = ["SERVICE_FAMILY"]
        card_kind = "NONE"
    else:
        categories = ["ACTIVE_SERVICE"]
        card_kind = "NONE"
    status_roll = rng.random()
    card_status = "ACTIVE" if status_roll < 0.96 else ("SUSPENDED" if status_roll < 0.98 else "REPLACED")
    return {
        "id_number": id_number,
        "name": name,
        "categories": "|".join(categories),
        "disability_grade": grade,
        "disability_cause": cause,
        "card_kind": card_kind,
        "card_status": card_status,
        "card_province": SHANGHAI_PROVINCE,
        "district": district if rng.random() < 0.9 else SHANGHAI_DISTRICTS[district][0],
        "birth_date": born.isoformat(),
    }


def synthetic_roster(count: int, *, seed: int = 0, today: date | None = None) -> Iterator[dict[str, str]]:
    """`count` distinct fictitious people with valid GB 11643 numbers; the same seed, the same people.

    Mostly veterans in Shanghai; some disabled servicemen (grade and cause), 三属, 军属 and
    serving members; a few suspended or replaced cards. District sometimes given by name.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    produced = 0
    while produced < count:
        person = _synthetic_person(rng, today or date.today())
        if person["id_number"] in seen:
            continue
        seen.add(person["id_number"])
        produced += 1
        yield person


def synthetic_roster_csv(count: int, *, seed: int = 0, rows: Iterable[dict[str, str]] | None = None) -> str:
    """The synthetic roster (or the given rows) as roster CSV text, header first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROSTER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows if rows is not None else synthetic_roster(count, seed=seed))
    return buffer.getvalue()
