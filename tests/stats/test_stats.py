"""GET /v1/admin/stats: the figures agree with counts taken straight from the ledger, and a
district admin's are their district's only; 差评 deadlines, overdue counts in stats and /metrics."""

from __future__ import annotations

import csv
import io
import re

import pytest

import identity
from benefits import catalog, stats
from tests.factories.people import VETERAN_ID
from tests.factories.world import OTHER_DISTRICT, VICTIM_DISTRICT, build_rating_world, login, reverse, suishen, visit
from tests.tokens import admin, auth_headers, staff

PUDONG = VICTIM_DISTRICT


async def _day(app, client, conn) -> dict:
    world = await build_rating_world(client, app)
    visits = [await visit(client, app, world, VETERAN_ID) for _ in range(3)]
    await visit(client, app, world, VETERAN_ID, xuhui=True)
    await reverse(client, world, visits[0])
    replay = suishen(app, VETERAN_ID)
    for _ in range(2):  # the second is refused: replayed
        await client.post("/v1/scans", json={"code": replay, "venue_id": world.pudong.venue_id}, headers=world.pudong.device_headers)
    rated = await client.post(
        f"/v1/me/redemptions/{visits[1]}/rating", json={"stars": 1, "comment": "排队太久"}, headers=await login(client, app, VETERAN_ID)
    )
    assert rated.status_code == 201, rated.text
    async with conn.transaction():
        await stats.refresh_stats(conn)
    return {"world": world, "visits": visits}


@pytest.fixture
async def day(app, client, conn):
    return await _day(app, client, conn)


async def _stats(client, headers, **params) -> dict:
    answer = await client.get("/v1/admin/stats", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


LEDGER = """
    SELECT count(*) FILTER (WHERE r.kind = 'redemption') AS redemptions, count(*) FILTER (WHERE r.kind = 'reversal') AS reversals,
           count(DISTINCT r.person_id) FILTER (WHERE r.kind = 'redemption') AS people,
           coalesce(sum(r.companions) FILTER (WHERE r.kind = 'redemption'), 0) AS companions
      FROM redemptions r JOIN venues v ON v.id = r.venue_id WHERE ($1::text IS NULL OR v.district = $1)
"""


async def test_city_figures_agree_with_the_ledger(app, client, conn, day):
    report = await _stats(client, auth_headers(app, admin("city")))
    truth = await conn.fetchrow(LEDGER, None)
    totals = report["totals"]
    assert (totals["redemptions"], totals["reversals"], totals["people"], totals["companions"]) == (
        truth["redemptions"], truth["reversals"], truth["people"], truth["companions"]) and truth["redemptions"] == 5
    assert totals["net"] == truth["redemptions"] - truth["reversals"]
    by_district = {d["key"]: (d["redemptions"], d["reversals"]) for d in report["by_district"]}
    for row in await conn.fetch(
        "SELECT v.district, count(*) FILTER (WHERE r.kind = 'redemption') AS a, count(*) FILTER (WHERE r.kind = 'reversal') AS b"
        " FROM redemptions r JOIN venues v ON v.id = r.venue_id GROUP BY 1"
    ):
        assert by_district[row["district"]] == (row["a"], row["b"])
    assert sum(d["redemptions"] for d in report["by_day"]) == truth["redemptions"]
    refused = {r["reason"]: r["count"] for r in report["refusals"]}
    assert refused == {r["reason"]: r["n"] for r in await conn.fetch("SELECT reason, count(*) AS n FROM rejected_scans GROUP BY 1")}
    assert refused.get("replayed") == 1
    used = {b["code"]: b for b in report["by_benefit"]}
    for row in await conn.fetch(
        "SELECT benefit_code, count(DISTINCT person_id) AS n FROM redemptions WHERE kind = 'redemption' GROUP BY 1"
    ):
        assert used[row["benefit_code"]]["used"] == row["n"]
    # reach: eligible = the roster's people for whom the benefit's rule holds now
    for code, entry in used.items():
        version = await catalog.get_benefit_by_code(conn, code)
        now = __import__("datetime").datetime.now(catalog.SHANGHAI)
        eligible = [p async for p in identity.iter_people(conn) if catalog.evaluate(version, p, now).eligible]
        assert entry["eligible"] == len(eligible) and entry["used"] <= entry["eligible"]
    assert report["ratings"]["count"] == 1 and report["ratings"]["low"] == 1 and report["ratings"]["open_cases"] == 1
    assert report["ratings"]["overdue_cases"] == 0
    assert report["venues_active"] == await conn.fetchval("SELECT count(*) FROM venues WHERE status = 'active'")
    assert report["devices_active"] == await conn.fetchval("SELECT count(*) FROM devices WHERE status = 'active'")


async def test_a_district_admin_sees_only_their_district(app, client, conn, day):
    pudong = auth_headers(app, admin("district", district=PUDONG))
    mine = await _stats(client, pudong)
    asked_other = await _stats(client, pudong, district=OTHER_DISTRICT)   # the scope wins
    assert asked_other == mine
    assert mine["query"]["district"] == PUDONG
    assert {d["key"] for d in mine["by_district"]} == {PUDONG}
    truth = await conn.fetchrow(LEDGER, PUDONG)
    assert (mine["totals"]["redemptions"], mine["totals"]["reversals"], mine["totals"]["people"]) == (
        truth["redemptions"], truth["reversals"], truth["people"]) and truth["redemptions"] == 4
    assert {c["district"] for c in mine["ratings"]["by_district"]} <= {PUDONG}
    xuhui = await _stats(client, auth_headers(app, admin("district", district=OTHER_DISTRICT)))
    assert xuhui["totals"]["redemptions"] == 1 and xuhui["ratings"]["count"] == 0 and xuhui["refusals"] == []
    city_xuhui = await _stats(client, auth_headers(app, admin("city")), district=OTHER_DISTRICT)
    assert city_xuhui["totals"] == xuhui["totals"]


async def test_csv_and_a_bad_window(app, client, day):
    city = auth_headers(app, admin("city"))
    answer = await client.get("/v1/admin/stats", headers={**city, "Accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert rows[0]["section"] == "totals" and rows[0]["redemptions"] == "5"
    for params in ({"from": "2026-12-01", "to": "2026-11-01"}, {"from": "1999-01-01", "to": "2026-01-01"},
                   {"from": "2001-01-01", "to": "2026-01-01"}):
        bad = await client.get("/v1/admin/stats", params=params, headers=city)
        assert bad.status_code == 422 and bad.json()["type"] == "urn:chongjun:problem:stats-window-invalid", bad.text
    assert (await client.get("/v1/admin/stats", headers=auth_headers(app, staff()))).status_code == 403


async def test_cases_get_a_due_time_and_overdue_ones_escalate(app, client, conn, day):
    from api.ratings import sample_overdue

    city = auth_headers(app, admin("city"))
    case = (await client.get("/v1/admin/ratings", headers=city)).json()["items"][0]
    opened = await conn.fetchrow("SELECT opened_at, due_at FROM rating_cases WHERE id = $1", __import__("uuid").UUID(case["id"]))
    assert (opened["due_at"] - opened["opened_at"]).total_seconds() == pytest.approx(app.state.settings.rating_case_due_hours * 3600, abs=5)
    assert case["overdue"] is False and case["due_at"]
    assert (await client.get("/v1/admin/ratings", params={"overdue": "true"}, headers=city)).json()["items"] == []
    await conn.execute("UPDATE rating_cases SET due_at = now() - interval '1 hour'")
    late = (await client.get("/v1/admin/ratings", params={"overdue": "true"}, headers=city)).json()["items"]
    assert [c["id"] for c in late] == [case["id"]] and late[0]["overdue"] is True
    report = await _stats(client, city)
    assert report["ratings"]["overdue_cases"] == 1
    assert report["ratings"]["by_district"] == [{"district": PUDONG, "open": 1, "overdue": 1}]
    await sample_overdue(conn)
    metrics = (await client.get("/metrics")).text
    assert re.search(r'chongjun_rating_cases_overdue\{district="310115"\} 1\.0', metrics), metrics[-2000:]


async def test_merchant_staff_read_their_venues_ratings(app, client, conn, day):
    merchant_id = await conn.fetchval("SELECT merchant_id FROM venues WHERE id = $1", __import__("uuid").UUID(day["world"].pudong.venue_id))
    mine = await client.get("/v1/merchant/ratings", headers=auth_headers(app, staff(merchant_id)))
    assert mine.status_code == 200, mine.text
    items = mine.json()["items"]
    assert len(items) == 1 and items[0]["stars"] == 1 and items[0]["case_status"] == "open" and items[0]["due_at"]
    assert "person_id" not in items[0]
    other = await client.get("/v1/merchant/ratings", headers=auth_headers(app, staff()))
    assert other.status_code in (200, 401, 403) and (other.status_code != 200 or other.json()["items"] == [])
