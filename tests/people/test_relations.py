"""Family ties in the roster (issue 12): the `relations` column, its re-import, and a 军属 rule end to end."""

from __future__ import annotations

import os

import pytest

import identity.people as people
from identity.people import RELATIONS_COLUMN, ROSTER_COLUMNS, RosterRejected, import_roster
from identity.pii import PiiVault
from tests.factories.people import VETERAN_ID
from tests.factories.world import DAILY, build_world, login, suishen
from tests.tokens import admin, auth_headers

HEADER = ",".join((*ROSTER_COLUMNS, RELATIONS_COLUMN))

SERVING_ID = "310115199503010010"  # 现役军人
SPOUSE_ID = "310115199307070032"  # their spouse, a 军属
PARENT_ID = "310115196805120027"  # their mother
OTHER_SERVING_ID = "310104199002020043"  # serving, not in the roster


def line(id_number: str, name: str, categories: str, relations: str = "", card: str = "NONE") -> str:
    return f"{id_number},{name},{categories},,,{card},ACTIVE,310000,310115,,{relations}"


def roster(*lines: str, header: str = HEADER) -> str:
    return "\n".join((header, *lines)) + "\n"


SERVING = line(SERVING_ID, "李强", "ACTIVE_SERVICE")


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})


async def _person(conn, vault, id_number):
    return await people.get_person_by_index(conn, vault.index_of(id_number))


async def test_ties_are_imported_by_blind_index_and_read_with_the_member_categories(conn, vault):
    report = await import_roster(conn, vault, roster(
        SERVING,
        line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}"),
        line(PARENT_ID, "赵兰", "SERVICE_FAMILY", f"PARENT:{SERVING_ID} | PARENT:{OTHER_SERVING_ID}:MARTYR"),
    ))
    assert report.imported and report.inserted == 3
    assert (report.relations_added, report.relations_updated, report.relations_removed) == (3, 0, 0)

    spouse = await _person(conn, vault, SPOUSE_ID)
    assert spouse.relations == (people.Kinship("SPOUSE", "ACTIVE", frozenset({"ACTIVE_SERVICE"})),)
    mother = await _person(conn, vault, PARENT_ID)
    # The martyr is not enrolled: no categories; the serving son is, with his roster categories.
    assert sorted(mother.relations, key=lambda k: k.member_status) == [
        people.Kinship("PARENT", "ACTIVE", frozenset({"ACTIVE_SERVICE"})),
        people.Kinship("PARENT", "MARTYR", frozenset()),
    ]
    assert (await _person(conn, vault, SERVING_ID)).relations == ()

    rows = await conn.fetch("SELECT member_id_hmac, source, member_person_id FROM person_relations")
    assert {bytes(r["member_id_hmac"]) for r in rows} == {vault.index_of(SERVING_ID), vault.index_of(OTHER_SERVING_ID)}
    assert {r["source"] for r in rows} == {"roster"} and all(r["member_person_id"] is None for r in rows)
    dump = str(await conn.fetch("SELECT * FROM person_relations")) + str(report)
    for number in (SERVING_ID, OTHER_SERVING_ID, SPOUSE_ID, PARENT_ID):
        assert number not in dump
    audit = await conn.fetchval("SELECT detail FROM audit_log WHERE action = 'people.import'")
    assert audit["relations_added"] == 3


async def test_a_re_import_updates_adds_and_removes_ties_and_a_file_without_the_column_keeps_them(conn, vault):
    await import_roster(conn, vault, roster(
        SERVING,
        line(PARENT_ID, "赵兰", "SERVICE_FAMILY", f"PARENT:{SERVING_ID}|PARENT:{OTHER_SERVING_ID}"),
        line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}"),
    ))
    again = await import_roster(conn, vault, roster(
        SERVING,
        line(PARENT_ID, "赵兰", "SERVICE_FAMILY", f"PARENT:{OTHER_SERVING_ID}:DUTY_DEATH|PARENT_IN_LAW:{SERVING_ID}"),
        line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}"),
    ))
    assert (again.relations_added, again.relations_updated, again.relations_removed) == (1, 1, 1)
    assert again.unchanged == 3  # the people themselves did not change
    mother = await _person(conn, vault, PARENT_ID)
    assert sorted((k.relation, k.member_status) for k in mother.relations) == [
        ("PARENT", "DUTY_DEATH"), ("PARENT_IN_LAW", "ACTIVE"),
    ]

    same = await import_roster(conn, vault, roster(
        SERVING,
        line(PARENT_ID, "赵兰", "SERVICE_FAMILY", f"PARENT:{OTHER_SERVING_ID}:DUTY_DEATH|PARENT_IN_LAW:{SERVING_ID}"),
    ))
    assert (same.relations_added, same.relations_updated, same.relations_removed) == (0, 0, 0)
    # The spouse was not in that file: her tie stays.
    assert len((await _person(conn, vault, SPOUSE_ID)).relations) == 1

    old_format = ",".join(ROSTER_COLUMNS)
    kept = await import_roster(conn, vault, roster(line(PARENT_ID, "赵兰", "SERVICE_FAMILY")[:-1], header=old_format))
    assert kept.imported and kept.relations_removed == 0
    assert len((await _person(conn, vault, PARENT_ID)).relations) == 2

    emptied = await import_roster(conn, vault, roster(line(PARENT_ID, "赵兰", "SERVICE_FAMILY", "")))
    assert emptied.relations_removed == 2
    assert (await _person(conn, vault, PARENT_ID)).relations == ()
    assert await conn.fetchval("SELECT count(*) FROM person_relations") == 1


async def test_an_admin_tie_survives_a_re_import(conn, vault):
    await import_roster(conn, vault, roster(SERVING, line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}")))
    spouse = await _person(conn, vault, SPOUSE_ID)
    serving = await _person(conn, vault, SERVING_ID)
    await people.add_relation(conn, spouse.id, people.Relation(relation="SPOUSE", member_status="MARTYR", member_person_id=serving.id))
    report = await import_roster(conn, vault, roster(line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", "")))
    assert report.relations_removed == 1
    assert (await _person(conn, vault, SPOUSE_ID)).relations == (
        people.Kinship("SPOUSE", "MARTYR", frozenset({"ACTIVE_SERVICE"})),
    )


async def test_bad_relations_are_reported_by_line_without_an_id_number_and_nothing_is_written(conn, vault):
    text = roster(
        SERVING,
        line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"COUSIN:{SERVING_ID}"),
        line(PARENT_ID, "赵兰", "SERVICE_FAMILY", f"PARENT:{SERVING_ID[:-1]}5"),
        line("310115199001011232", "孙丽", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}:RETIRED"),
        line("310115199001011259", "周敏", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}|SPOUSE:{SERVING_ID}"),
        line(OTHER_SERVING_ID, "吴刚", "ACTIVE_SERVICE", f"CHILD:{OTHER_SERVING_ID}"),
        line("310115199001011267", "郑洁", "SERVICE_FAMILY", "SPOUSE"),
        line("310115199001011275", "钱红", "SERVICE_FAMILY", "SPOUSE:"),
    )
    with pytest.raises(RosterRejected) as caught:
        await import_roster(conn, vault, text)
    report = caught.value.report
    assert not report.imported and report.rejected == 7 and report.valid == 1
    errors = {error.line: error for error in report.errors}
    assert {error.field for error in report.errors} == {"relations"}
    assert "unknown relation 'COUSIN'" in errors[3].message
    assert "check character" in errors[4].message and "serviceman's ID number" in errors[4].message
    assert "unknown member status 'RETIRED'" in errors[5].message
    assert "listed twice" in errors[6].message
    assert "not their own relative" in errors[7].message
    assert "KIND:ID_NUMBER" in errors[8].message
    assert "missing" in errors[9].message
    assert errors[3].id_masked == "310***********0032"
    for number in (SERVING_ID, SERVING_ID[:-1] + "5", OTHER_SERVING_ID):
        assert number not in repr(report)
    assert await conn.fetchval("SELECT count(*) FROM people") == 0
    assert await conn.fetchval("SELECT count(*) FROM person_relations") == 0


async def test_a_line_must_have_the_relations_field_when_the_header_names_it(conn, vault):
    with pytest.raises(RosterRejected) as caught:
        await import_roster(conn, vault, roster(SERVING[: SERVING.rindex(",")]))
    assert [(e.line, e.field) for e in caught.value.report.errors] == [(2, "line")]
    assert "expected 11 fields, found 10" in caught.value.report.errors[0].message


# --- end to end: a 军属 benefit through /v1/me/benefits and a scan --------------------------------

SERVICE_FAMILY_BENEFIT = {
    **DAILY,
    "code": "F1",
    "name_zh": "军属免费参观",
    "rule": {"op": "family_relation", "relations": ["SPOUSE", "PARENT"], "of": ["ACTIVE_SERVICE"]},
}
NO_TIE_ID = "310115199001011232"  # 军属 by category, but the roster lists no tie


async def test_a_service_family_benefit_holds_for_a_relative_imported_with_the_tie_and_not_without(app, client):
    world = await build_world(client, app, benefit=SERVICE_FAMILY_BENEFIT)
    city = auth_headers(app, admin("city"))
    imported = await client.post(
        "/v1/admin/people/import",
        content=roster(
            SERVING,
            line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}"),
            line(NO_TIE_ID, "孙丽", "SERVICE_FAMILY"),
        ).encode(),
        headers={"content-type": "text/csv", **city},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["relations_added"] == 1

    mine = {i["code"]: i for i in (await client.get("/v1/me/benefits", headers=await login(client, app, SPOUSE_ID))).json()["items"]}
    assert mine["F1"]["eligible"], mine["F1"]
    for id_number in (NO_TIE_ID, VETERAN_ID):
        theirs = {i["code"]: i for i in (await client.get("/v1/me/benefits", headers=await login(client, app, id_number))).json()["items"]}
        assert not theirs["F1"]["eligible"]
        assert "配偶" in theirs["F1"]["reason_zh"] and "SPOUSE/PARENT of a serviceman" in theirs["F1"]["reason_en"]

    async def scan(id_number):
        answer = await client.post(
            "/v1/scans", json={"code": suishen(app, id_number), "venue_id": world.venue_id}, headers=world.device_headers
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    accepted = await scan(SPOUSE_ID)
    assert accepted["decision"] == "accepted" and accepted["benefit"]["code"] == "F1"
    for id_number in (NO_TIE_ID, VETERAN_ID):
        refused = await scan(id_number)
        assert refused["decision"] == "rejected" and refused["reason"] == "not_eligible"
        # The merchant hears the reason code and its fixed message; why exactly is the holder's to see.
        assert refused["message"] == "不符合该项优待条件" and "配偶" not in str(refused)

    # The tie removed by a re-import: the spouse is refused from then on.
    removed = await client.post(
        "/v1/admin/people/import",
        content=roster(line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", "")).encode(),
        headers={"content-type": "text/csv", **city},
    )
    assert removed.status_code == 200 and removed.json()["relations_removed"] == 1
    mine = {i["code"]: i for i in (await client.get("/v1/me/benefits", headers=await login(client, app, SPOUSE_ID))).json()["items"]}
    assert not mine["F1"]["eligible"]
    assert (await scan(SPOUSE_ID))["reason"] == "not_eligible"


async def test_a_bad_relation_line_answers_422_with_its_line(app, client):
    city = auth_headers(app, admin("city"))
    refused = await client.post(
        "/v1/admin/people/import",
        content=roster(SERVING, line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID[:-1]}5")).encode(),
        headers={"content-type": "text/csv", **city},
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert any(e["line"] == 3 and e["field"] == "relations" for e in body["report"]["errors"]), body
    assert SERVING_ID[:-1] + "5" not in refused.text and SERVING_ID not in refused.text


async def test_the_scan_person_read_is_planned_once_not_on_every_scan(conn, vault):
    """Every 随申码 scan reads the person with their ties by the blind index (and the other
    profile's). Its array form was planned afresh on every execution (PostgreSQL's generic plan
    guessed ten rows); the statement now keeps its generic plan after the first executions."""
    await import_roster(conn, vault, roster(SERVING, line(SPOUSE_ID, "王芳", "SERVICE_FAMILY", f"SPOUSE:{SERVING_ID}")))
    other = vault.index_of(OTHER_SERVING_ID)  # not enrolled: the second index finds the person
    for _ in range(10):
        spouse = await people.get_person_by_index(conn, other, alt=vault.index_of(SPOUSE_ID))
        assert spouse.relations == (people.Kinship("SPOUSE", "ACTIVE", frozenset({"ACTIVE_SERVICE"})),)
    # Both indexes enrolled: the first one wins.
    first = await people.get_person_by_index(conn, vault.index_of(SERVING_ID), alt=vault.index_of(SPOUSE_ID))
    assert first.relations == () and first.categories == frozenset({"ACTIVE_SERVICE"})
    plans = await conn.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE '%wanted (rank, id_hmac)%' AND statement NOT LIKE '%pg_prepared_statements%'"
    )  # (not this query itself, whose text names the same words)
    assert plans["generic_plans"] >= 5 and plans["custom_plans"] <= 5, dict(plans)
