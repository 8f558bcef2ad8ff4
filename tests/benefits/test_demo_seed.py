"""The demo seed: the whole reference catalog with its venues, written once."""

from __future__ import annotations

from datetime import UTC, datetime

from benefits import catalog
import merchants
from chongjun.demo import load_reference_catalog, seed_demo
from merchants.creditcode import make_credit_code
from foundation.vocabulary import SHANGHAI_DISTRICTS
from tests.factories.people import person

CODES = [f"T{i}" for i in range(1, 13)] + [f"C{i}" for i in range(1, 14)] + [f"L{i}" for i in range(1, 17)]


def test_the_catalog_file_holds_every_reference_item_and_district():
    reference = load_reference_catalog()
    assert sorted(b["code"] for b in reference.benefits) == sorted(CODES)
    assert {v.district for v in reference.venues} == set(SHANGHAI_DISTRICTS)
    for item in reference.benefits:
        catalog.decode_draft({k: v for k, v in item.items() if k != "venues"})
    assert all(merchants.is_valid_credit_code(make_credit_code("310101", n)) for n in range(1, 20))


async def test_seed_is_complete_and_idempotent(conn, redis, settings):
    summary = await seed_demo(conn, redis, settings)
    assert "41 benefits" in summary and "device_id=" in summary
    assert "username=demo-admin password=demo-admin-password" in summary and "username=demo-staff" in summary
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM benefits) b, (SELECT count(*) FROM benefit_versions) v,"
        " (SELECT count(*) FROM venues) ve, (SELECT count(*) FROM venue_benefits) vb, (SELECT count(*) FROM devices) d,"
        " (SELECT count(*) FROM audit_log) a, (SELECT count(*) FROM accounts) acc"
    )
    assert counts["acc"] == 4
    again = await seed_demo(conn, redis, settings)
    assert "already present" in again
    assert await conn.fetchrow(
        "SELECT (SELECT count(*) FROM benefits) b, (SELECT count(*) FROM benefit_versions) v,"
        " (SELECT count(*) FROM venues) ve, (SELECT count(*) FROM venue_benefits) vb, (SELECT count(*) FROM devices) d,"
        " (SELECT count(*) FROM audit_log) a, (SELECT count(*) FROM accounts) acc"
    ) == counts
    active = await catalog.list_active_benefits(conn)
    assert sorted(v.code for v in active) == sorted(CODES)
    assert {v.domain for v in active} == {"culture", "tourism", "transit"}
    unlimited = {v.code for v in active if not v.caps}
    assert {"T1", "T2", "T3"} <= unlimited
    c12 = await catalog.get_benefit_by_code(conn, "C12")
    assert [(c.period, c.max) for c in c12.caps] == [("day", 1), ("month", 4)]

    at = datetime(2026, 11, 27, 2, tzinfo=UTC)
    disabled = person("DEMOBILIZED_SOLDIER", "DISABLED_SERVICEMAN", disability_grade=2, disability_cause="WAR")
    plain = person("DEMOBILIZED_SOLDIER")
    mine = {i.code: i for i in (await catalog.my_benefits(conn, redis, disabled, disabled.id, at=at)).items}
    assert mine["T1"].eligible and mine["T2"].eligible
    assert mine["C8"].companions_allowed == 1 and mine["L8"].value.__struct_config__.tag == "free"
    theirs = {i.code: i for i in (await catalog.my_benefits(conn, redis, plain, plain.id, at=at)).items}
    assert not theirs["T1"].eligible and "DISABLED_SERVICEMAN" in theirs["T1"].reason_en
