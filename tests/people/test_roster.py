"""Roster import against the real PostgreSQL: validation report, all-or-nothing, idempotent upsert."""

from __future__ import annotations

import codecs
import os
import random
import uuid

import pytest

import identity.people as people
from identity.pii import PiiVault, SealBroken, mask_id_number
from identity.people import ROSTER_COLUMNS, RosterRejected, import_roster, synthetic_roster, synthetic_roster_csv

HEADER = ",".join(ROSTER_COLUMNS)


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})


def roster(*lines: str) -> str:
    return "\n".join((HEADER, *lines)) + "\n"


GOOD = "310101199001011234,张三丰,VETERAN|COMBAT_VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,1990-01-01"
DISABLED = "11010519491231002X,欧阳娜娜,VETERAN|DISABLED_SERVICEMAN,3,因战,VETERAN_CARD,ACTIVE,310000,浦东新区,"


async def test_import_writes_people_with_sealed_pii(conn, vault):
    report = await import_roster(conn, vault, roster(GOOD, DISABLED))
    assert report.imported and report.lines == 2 and report.valid == 2 and report.inserted == 2
    assert report.rejected == 0 and report.errors == ()
    row = await conn.fetchrow("SELECT * FROM people WHERE id_hmac = $1", vault.index_of("11010519491231002X"))
    assert row["name_masked"] == "欧阳**" and row["id_masked"] == "110***********002X"
    assert row["district"] == "310115" and row["disability_cause"] == "WAR" and row["disability_grade"] == 3
    assert str(row["birth_date"]) == "1949-12-31"  # taken from the ID number when the column is empty
    assert vault.open(row["id_sealed"], table="people", column="id_number", row=row["id"]) == "11010519491231002X"
    assert vault.open(row["name_sealed"], table="people", column="name", row=row["id"]) == "欧阳娜娜"
    person = await people.get_person(conn, row["id"])
    assert person.categories == frozenset({"VETERAN", "DISABLED_SERVICEMAN"})
    assert person.name_masked == "欧阳**" and person.card_status == "ACTIVE"
    assert await people.get_person(conn, uuid.uuid4()) is None
    audit = await conn.fetchrow("SELECT actor_kind, action, detail FROM audit_log WHERE action = 'people.import'")
    assert audit["detail"]["inserted"] == 2


async def test_one_bad_line_rejects_the_whole_file_with_a_masked_report(conn, vault):
    bad_checksum = "310101199001011235,李四,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,"
    unknown_category = "310104198503077777,王五,PIRATE,,,VETERAN_CARD,ACTIVE,310000,310104,"
    short = "310104198503077777,王五"
    with pytest.raises(RosterRejected) as caught:
        await import_roster(conn, vault, roster(GOOD, bad_checksum, unknown_category, short))
    report = caught.value.report
    assert not report.imported and report.lines == 4 and report.valid == 1 and report.rejected == 3
    by_line = {error.line: error for error in report.errors}
    assert by_line[3].field == "id_number" and by_line[3].id_masked == "310***********1235"
    assert by_line[4].field == "categories"
    assert by_line[5].field == "line"
    text = repr(report)
    for number in ("310101199001011235", "310104198503077777", "310101199001011234"):
        assert number not in text
    assert await conn.fetchval("SELECT count(*) FROM people") == 0
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_valid_only_imports_the_good_lines_and_reports_the_rest(conn, vault):
    bad = "310101199001011235,李四,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,"
    report = await import_roster(conn, vault, roster(GOOD, bad), valid_only=True)
    assert report.imported and report.inserted == 1 and report.rejected == 1
    assert [error.line for error in report.errors] == [3]
    assert await conn.fetchval("SELECT count(*) FROM people") == 1


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("310101199001011234,,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,", "name"),
        ("310101199001011234,张3,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,", "name"),
        ("310101199001011234,张三,,,,VETERAN_CARD,ACTIVE,310000,310101,", "categories"),
        ("310101199001011234,张三,DISABLED_SERVICEMAN,11,WAR,VETERAN_CARD,ACTIVE,310000,310101,", "disability_grade"),
        ("310101199001011234,张三,DISABLED_SERVICEMAN,,,VETERAN_CARD,ACTIVE,310000,310101,", "disability_grade"),
        ("310101199001011234,张三,DISABLED_SERVICEMAN,2,FALL,VETERAN_CARD,ACTIVE,310000,310101,", "disability_cause"),
        ("310101199001011234,张三,VETERAN,2,WAR,VETERAN_CARD,ACTIVE,310000,310101,", "disability_grade"),
        ("310101199001011234,张三,VETERAN,,,GOLD_CARD,ACTIVE,310000,310101,", "card_kind"),
        ("310101199001011234,张三,VETERAN,,,VETERAN_CARD,LOST,310000,310101,", "card_status"),
        ("310101199001011234,张三,VETERAN,,,VETERAN_CARD,ACTIVE,310101,310101,", "card_province"),
        ("310101199001011234,张三,VETERAN,,,VETERAN_CARD,ACTIVE,310000,火星区,", "district"),
        ("310101199001011234,张三,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,1990-13-01", "birth_date"),
        ("310101199001011234,张三,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,1991-01-01", "birth_date"),
        (",张三,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,", "id_number"),
    ],
)
def test_each_field_is_validated(line, field):
    rows, errors, lines, rejected, _ = people.parse_roster(roster(line))
    assert rows == [] and lines == 1 and rejected == 1
    assert field in {error.field for error in errors}
    assert all(error.line == 2 for error in errors)
    assert "310101199001011234" not in repr(errors)


def test_header_must_match_and_duplicates_are_reported():
    _, errors, _, _, _ = people.parse_roster("id,name\n1,2\n")
    assert errors[0].line == 1 and errors[0].field == "header"
    rows, errors, _, _, _ = people.parse_roster(roster(GOOD, GOOD.replace("张三丰", "张三")))
    assert len(rows) == 1 and errors[0].line == 3 and "line 2" in errors[0].message


def test_utf8_bom_and_gb18030_files_are_read():
    text = roster(GOOD)
    assert people.decode_roster(b"\xef\xbb\xbf" + text.encode()) == text
    assert people.decode_roster(text.encode("gb18030")) == text
    rows, errors, _, _, _ = people.parse_roster(people.decode_roster(b"\xef\xbb\xbf" + text.encode()))
    assert len(rows) == 1 and not errors


async def test_reimport_is_idempotent_and_updates_in_place(conn, vault):
    text = synthetic_roster_csv(300, seed=7)
    first = await import_roster(conn, vault, text)
    assert first.inserted == 300
    before = await conn.fetch("SELECT id, id_sealed, name_sealed, updated_at FROM people ORDER BY id")
    again = await import_roster(conn, vault, text)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 300)
    after = await conn.fetch("SELECT id, id_sealed, name_sealed, updated_at FROM people ORDER BY id")
    assert before == after  # byte-identical: no blob resealed, no row touched

    rows = list(synthetic_roster(300, seed=7))
    rows[0] = {**rows[0], "card_status": "SUSPENDED"}
    rows[1] = {**rows[1], "name": "改名字"}
    changed = await import_roster(conn, vault, synthetic_roster_csv(0, rows=rows))
    assert (changed.inserted, changed.updated, changed.unchanged) == (0, 2, 298)
    assert await conn.fetchval("SELECT count(*) FROM people") == 300
    renamed = await conn.fetchrow("SELECT id, name_sealed, name_masked FROM people WHERE id_hmac = $1",
                                  vault.index_of(rows[1]["id_number"]))
    assert renamed["name_masked"] == "改**"
    assert vault.open(renamed["name_sealed"], table="people", column="name", row=renamed["id"]) == "改名字"


async def test_rotated_seal_key_reseals_on_the_next_import(conn):
    index, old_key, new_key = os.urandom(32), os.urandom(32), os.urandom(32)
    text = synthetic_roster_csv(20, seed=3)
    await import_roster(conn, PiiVault(index_key=index, seal_keys={1: old_key}), text)
    rotated = PiiVault(index_key=index, seal_keys={1: old_key, 2: new_key})
    report = await import_roster(conn, rotated, text)
    assert (report.inserted, report.updated) == (0, 20)
    rows = await conn.fetch("SELECT id, id_sealed, name_sealed, seal_version FROM people")
    assert {row["seal_version"] for row in rows} == {2}
    only_new = PiiVault(index_key=index, seal_keys={2: new_key})
    for row in rows:
        assert PiiVault.version_of(row["id_sealed"]) == PiiVault.version_of(row["name_sealed"]) == 2
        only_new.open(row["id_sealed"], table="people", column="id_number", row=row["id"])


async def test_switching_to_the_gm_profile_reseals_with_sm4_on_the_next_import(conn):
    index, key = os.urandom(32), os.urandom(32)
    text = synthetic_roster_csv(10, seed=4)
    await import_roster(conn, PiiVault(index_key=index, seal_keys={1: key}), text)
    gm = PiiVault(index_key=index, seal_keys={1: key}, cipher="sm4-gcm")
    report = await import_roster(conn, gm, text)
    assert (report.inserted, report.updated) == (0, 10)
    rows = await conn.fetch("SELECT id, id_sealed, name_sealed, seal_version FROM people")
    assert {row["seal_version"] for row in rows} == {1}
    for row in rows:
        assert gm.is_current(row["id_sealed"]) and gm.is_current(row["name_sealed"])
        gm.open(row["id_sealed"], table="people", column="id_number", row=row["id"])
    again = await import_roster(conn, gm, text)
    assert (again.inserted, again.updated) == (0, 0)  # idempotent under gm too


async def test_the_index_follows_the_profile_and_earlier_rows_stay_findable(conn):
    """Under gm the index is HMAC-SM3; a person enrolled under intl is found by either index until
    the next import rewrites the row to the profile's index (no duplicate person, same id)."""
    from identity import enrolled_person_id, get_person_by_index

    index, key = os.urandom(32), os.urandom(32)
    text = synthetic_roster_csv(6, seed=5)
    intl = PiiVault(index_key=index, seal_keys={1: key})
    gm = PiiVault(index_key=index, seal_keys={1: key}, cipher="sm4-gcm")
    await import_roster(conn, intl, text)
    rows, _, _, _, _ = people.parse_roster(text)
    number = rows[0].id_number
    before = await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", intl.blind_index(number))
    # Switched to gm, not re-imported yet: the gm index misses, the other one (alt) finds the person.
    primary, alt = gm.indexes_of(number)
    assert await get_person_by_index(conn, primary) is None
    assert (await get_person_by_index(conn, primary, alt=alt)).id == before
    assert await enrolled_person_id(conn, primary, alt=alt) == before
    report = await import_roster(conn, gm, text)
    assert (report.inserted, report.updated) == (0, 6)  # rewritten, not added
    assert await conn.fetchval("SELECT count(*) FROM people") == 6
    assert await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", gm.blind_index(number)) == before
    assert await conn.fetchval("SELECT count(*) FROM people WHERE id_hmac = ANY($1::bytea[])",
                               [intl.blind_index(r.id_number) for r in rows]) == 0
    assert (await get_person_by_index(conn, primary)).id == before  # found by the gm index alone now
    # And back: a switch to intl finds them through the alt index, the next import rewrites them.
    back, back_alt = intl.indexes_of(number)
    assert await enrolled_person_id(conn, back, alt=back_alt) == before
    await import_roster(conn, intl, text)
    assert await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", back) == before


async def test_blob_moved_to_another_row_in_the_database_does_not_open(conn, vault):
    await import_roster(conn, vault, roster(GOOD, DISABLED))
    a, b = await conn.fetch("SELECT id, id_sealed FROM people ORDER BY id")
    await conn.execute("UPDATE people SET id_sealed = $1 WHERE id = $2", a["id_sealed"], b["id"])
    moved = await conn.fetchval("SELECT id_sealed FROM people WHERE id = $1", b["id"])
    with pytest.raises(SealBroken):
        vault.open(moved, table="people", column="id_number", row=b["id"])


async def test_synthetic_roster_is_deterministic_and_valid(conn, vault):
    assert synthetic_roster_csv(50, seed=1) == synthetic_roster_csv(50, seed=1)
    assert synthetic_roster_csv(50, seed=1) != synthetic_roster_csv(50, seed=2)
    rows, errors, lines, _, _ = people.parse_roster(synthetic_roster_csv(2000, seed=11))
    assert not errors and len(rows) == lines == 2000
    assert mask_id_number(rows[0].id_number) != rows[0].id_number


async def test_relations_record_three_survivor_and_service_family_ties(conn, vault):
    await import_roster(conn, vault, roster(GOOD, DISABLED))
    a, b = [row["id"] for row in await conn.fetch("SELECT id FROM people ORDER BY id")]
    tie = people.Relation(relation="SPOUSE", member_status="MARTYR", member_person_id=b, member_name_masked="欧阳**")
    await people.add_relation(conn, a, tie)
    await people.add_relation(conn, a, tie)  # idempotent
    assert await people.list_relations(conn, a) == [tie]
    assert await people.list_relations(conn, b) == []


# --- encodings: bytes we cannot read as a roster are a 400 roster-encoding, never a 500 -------------

NOT_TEXT = {
    "utf-16 without a bom": roster(GOOD).encode("utf-16-le"),
    "utf-16 big-endian without a bom": roster(GOOD).encode("utf-16-be"),
    "random bytes": random.Random(7).randbytes(4096),
    "an xlsx (zip) file": b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + bytes(range(256)),
    "a torn utf-16 file": codecs.BOM_UTF16_LE + roster(GOOD).encode("utf-16-le")[:-1],
}


@pytest.mark.parametrize("data", NOT_TEXT.values(), ids=NOT_TEXT.keys())
async def test_a_roster_that_is_not_text_is_a_400_over_http(client, app, conn, data):
    from tests.people.test_api import PROBLEM_TYPE_PREFIX, import_csv_bytes

    refused = await import_csv_bytes(client, app, data)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + "roster-encoding"
    assert "UTF-8" in body["detail"] and "nothing was imported" in body["detail"]
    assert await conn.fetchval("SELECT count(*) FROM people") == 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
async def test_the_encodings_excel_writes_are_read(client, app, conn, encoding):
    from tests.people.test_api import import_csv_bytes

    answer = await import_csv_bytes(client, app, roster(GOOD, DISABLED).encode(encoding))
    assert answer.status_code == 200, answer.text
    assert answer.json()["inserted"] == 2
    names = {row["name_masked"] for row in await conn.fetch("SELECT name_masked FROM people")}
    assert names == {"张**", "欧阳**"}


async def test_a_line_the_csv_reader_cannot_read_is_reported_not_a_500(client, app, conn):
    from tests.people.test_api import PROBLEM_TYPE_PREFIX, import_csv_bytes

    oversized = '310101199001011234,"' + "张" * 140_000 + '",VETERAN,,,VETERAN_CARD,ACTIVE,310000,310101,'
    refused = await import_csv_bytes(client, app, roster(GOOD, oversized, DISABLED).encode())
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + "roster-rejected"
    assert [(e["line"], e["field"]) for e in body["report"]["errors"]] == [(3, "line")]
    assert "张张张" not in refused.text
    assert await conn.fetchval("SELECT count(*) FROM people") == 0


async def test_a_text_roster_with_control_characters_is_refused(conn, vault):
    with pytest.raises(people.RosterEncoding):
        await import_roster(conn, vault, roster(GOOD).replace(",", ",\x00", 1))


def test_import_roster_cli_refuses_a_file_that_is_not_text(settings, tmp_path):
    import subprocess
    import sys

    from tests.people.test_api import cli_env

    path = tmp_path / "roster-utf16.csv"
    path.write_bytes(roster(GOOD).encode("utf-16-le"))
    run = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "import-roster", str(path)],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1
    assert "UTF-8" in run.stderr and "nothing was imported" in run.stderr and "Traceback" not in run.stderr
