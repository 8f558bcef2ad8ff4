"""Issue 4's acceptance over HTTP, from the demo seed to a veteran's 免申即享 list."""

from __future__ import annotations

from chongjun.demo import NAMED_PEOPLE, seed_demo
from tests.benefits.test_demo_seed import CODES
from tests.foundation.test_http_contract import assert_problem
from tests.tokens import admin, auth_headers, veteran

DISABLED = dict(NAMED_PEOPLE)["grade-2 disabled serviceman (因战)"]["id_number"]
PLAIN = dict(NAMED_PEOPLE)["plain veteran"]["id_number"]


async def _login(client, app, id_number: str) -> dict[str, str]:
    code = app.state.city.dev.issue(id_number)
    response = await client.post("/v1/auth/suishen", json={"code": code})
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


async def test_seeded_catalog_and_matching_for_two_veterans(app, client, conn, redis, settings):
    await seed_demo(conn, redis, settings)
    catalog = (await client.get("/v1/benefits")).json()["items"]
    assert sorted(i["code"] for i in catalog) == sorted(CODES)
    assert {i["domain"] for i in catalog} == {"culture", "tourism", "transit"}

    disabled = (await client.get("/v1/me/benefits", headers=await _login(client, app, DISABLED))).json()
    mine = {i["code"]: i for i in disabled["items"]}
    assert len(mine) == len(CODES)
    assert mine["T1"]["eligible"] and mine["T2"]["eligible"]
    assert mine["T1"]["reason_zh"].startswith("符合条件") and mine["T1"]["venues"]
    assert mine["C8"]["companions_allowed"] == 1  # grade 1–4: one companion

    plain = (await client.get("/v1/me/benefits", headers=await _login(client, app, PLAIN))).json()
    theirs = {i["code"]: i for i in plain["items"]}
    t1 = theirs["T1"]
    assert not t1["eligible"] and t1["clause"] == "$.rule"
    assert "残疾军人" in t1["reason_zh"] and "DISABLED_SERVICEMAN" in t1["reason_en"]
    assert theirs["C12"]["eligible"] and theirs["C12"]["remaining"] == 1
    assert [q["period"] for q in theirs["C12"]["quota"]] == ["day", "month"]


async def test_me_benefits_is_for_veterans_only(app, client):
    assert (await client.get("/v1/me/benefits")).status_code == 401
    assert (await client.get("/v1/me/benefits", headers=auth_headers(app, admin("city")))).status_code == 403
    unknown = await client.get("/v1/me/benefits", headers=auth_headers(app, veteran()))
    assert unknown.status_code == 404


async def test_editing_a_rule_makes_a_version_and_bad_rules_are_422(app, client, conn, redis, settings):
    await seed_demo(conn, redis, settings)
    city = auth_headers(app, admin("city"))
    t1 = next(i for i in (await client.get("/v1/benefits")).json()["items"] if i["code"] == "T1")
    edited = await client.patch(
        f"/v1/admin/benefits/{t1['id']}", json={"rule": {"op": "disability_grade", "min": 1, "max": 6}}, headers=city
    )
    assert edited.status_code == 200 and edited.json()["version"] == t1["version"] + 1
    after = next(i for i in (await client.get("/v1/benefits")).json()["items"] if i["code"] == "T1")
    assert after["version"] == t1["version"] + 1 and after["rule_summary_zh"] == "残疾等级为1至6级"
    bad = await client.patch(
        f"/v1/admin/benefits/{t1['id']}",
        json={"rule": {"op": "all", "all": [{"op": "always"}, {"op": "always"}, {"op": "disability_grade", "min": 0}]}},
        headers=city,
    )
    assert assert_problem(bad, 422, "invalid-rule")["errors"][0]["path"] == "$.rule.all[2].min"


async def test_the_printed_demo_credentials_work(client, conn, redis, settings):
    summary = await seed_demo(conn, redis, settings)
    for username, password in (("demo-staff", "demo-staff-password"), ("demo-admin", "demo-admin-password")):
        assert f"username={username} password={password}" in summary
        response = await client.post("/v1/auth/staff", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
    device_line = next(line for line in summary.splitlines() if "device_id=" in line)
    device_id = device_line.split("device_id=")[1].split()[0]
    secret = device_line.split("secret=")[1].split()[0]
    import uuid

    import merchants

    credentials = await merchants.authenticate_device(
        conn, uuid.UUID(device_id), secret, hmac_key=merchants.device_hmac_key(settings)
    )
    assert str(credentials.device_id) == device_id
