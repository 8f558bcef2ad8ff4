"""Admin CRUD of benefits over HTTP: validation with paths, versions, roles, audit."""

from __future__ import annotations

import msgspec

from tests.factories.world import BENEFIT_DRAFT as DRAFT
from tests.foundation.test_http_contract import assert_problem
from tests.tokens import admin, auth_headers, veteran


async def test_create_edit_version_and_status(app, client, conn):
    city = auth_headers(app, admin("city"))
    created = await client.post("/v1/admin/benefits", json=DRAFT, headers=city)
    assert created.status_code == 201, created.text
    benefit = created.json()
    assert benefit["version"] == 1 and benefit["status"] == "active" and benefit["code"] == "T1"
    benefit_id = benefit["benefit_id"]

    edited = await client.patch(
        f"/v1/admin/benefits/{benefit_id}",
        json={"rule": {"op": "all", "all": [DRAFT["rule"], {"op": "disability_grade", "min": 1, "max": 6}]}},
        headers=city,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    first = await client.get(f"/v1/admin/benefits/{benefit_id}/versions/1", headers=city)
    assert first.json()["rule"] == DRAFT["rule"]
    assert (await client.get(f"/v1/admin/benefits/{benefit_id}/versions/9", headers=city)).status_code == 404

    replaced = await client.put(
        f"/v1/admin/benefits/{benefit_id}?expected_version=2",
        json={k: v for k, v in DRAFT.items() if k != "status"} | {"name_en": "Free bus"},
        headers=city,
    )
    assert replaced.json()["version"] == 3 and replaced.json()["name_en"] == "Free bus"
    stale = await client.put(
        f"/v1/admin/benefits/{benefit_id}?expected_version=2",
        json={k: v for k, v in DRAFT.items() if k != "status"},
        headers=city,
    )
    assert_problem(stale, 409, "benefit-version-conflict")

    paused = await client.post(f"/v1/admin/benefits/{benefit_id}/status", json={"status": "paused"}, headers=city)
    assert paused.json()["status"] == "paused" and paused.json()["version"] == 4
    assert (await client.get("/v1/benefits")).json()["items"] == []  # the public catalog followed
    refused = await client.post(f"/v1/admin/benefits/{benefit_id}/status", json={"status": "draft"}, headers=city)
    assert_problem(refused, 409, "benefit-status-change-refused")

    audit = await conn.fetch("SELECT action, actor_kind, object_id FROM audit_log WHERE object_kind = 'benefit' ORDER BY id")
    assert [r["action"] for r in audit] == ["benefit.create", "benefit.update", "benefit.update", "benefit.status.paused"]
    assert {r["actor_kind"] for r in audit} == {"admin"} and {r["object_id"] for r in audit} == {benefit_id}
    versions = await conn.fetchval("SELECT count(*) FROM benefit_versions WHERE benefit_id = $1", msgspec.convert(benefit_id, __import__("uuid").UUID))
    assert versions == 4


async def test_a_malformed_rule_is_a_422_naming_the_node(app, client, conn):
    city = auth_headers(app, admin("city"))
    bad = {**DRAFT, "rule": {"op": "all", "all": [{"op": "always"}, {"op": "always"}, {"op": "disability_grade", "min": 0}]}}
    response = await client.post("/v1/admin/benefits", json=bad, headers=city)
    body = assert_problem(response, 422, "invalid-rule")
    assert body["errors"][0]["path"] == "$.rule.all[2].min"
    assert "$.rule.all[2].min" in body["detail"]

    semantic = {**DRAFT, "rule": {"op": "disability_grade", "min": 6, "max": 2}}
    assert assert_problem(await client.post("/v1/admin/benefits", json=semantic, headers=city), 422, "invalid-rule")[
        "errors"
    ][0]["path"] == "$.rule.min"
    other = {**DRAFT, "caps": [{"period": "fortnight", "max": 1}]}
    assert assert_problem(await client.post("/v1/admin/benefits", json=other, headers=city), 422, "invalid-benefit")[
        "errors"
    ][0]["path"] == "$.caps[0].period"
    deep = b'{"code":"X","rule":' + b'{"op":"not","not":' * 5000 + b'{"op":"always"}' + b"}" * 5000 + b"}"
    assert_problem(
        await client.post("/v1/admin/benefits", content=deep, headers={**city, "content-type": "application/json"}),
        422,
        "invalid-rule",
    )
    assert_problem(
        await client.post("/v1/admin/benefits", content=b"{nope", headers={**city, "content-type": "application/json"}),
        400,
        "malformed-json",
    )
    unknown_venue = {**DRAFT, "venue_ids": ["00000000-0000-4000-8000-000000000001"]}
    assert assert_problem(await client.post("/v1/admin/benefits", json=unknown_venue, headers=city), 422, "invalid-benefit")[
        "errors"
    ][0]["path"] == "$.venue_ids"
    assert await conn.fetchval("SELECT count(*) FROM benefits") == 0
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_roles_district_admins_read_only(app, client):
    city = auth_headers(app, admin("city"))
    created = (await client.post("/v1/admin/benefits", json=DRAFT, headers=city)).json()
    district = auth_headers(app, admin("district", district="310104"))
    auditor = auth_headers(app, admin("auditor"))
    for headers in (district, auditor):
        page = await client.get("/v1/admin/benefits", headers=headers)
        assert page.status_code == 200 and [b["code"] for b in page.json()["items"]] == ["T1"]
        assert (await client.get(f"/v1/admin/benefits/{created['benefit_id']}", headers=headers)).status_code == 200
        assert (await client.post("/v1/admin/benefits", json={**DRAFT, "code": "T2"}, headers=headers)).status_code == 403
        assert (await client.patch(f"/v1/admin/benefits/{created['benefit_id']}", json={"name_en": "x"}, headers=headers)).status_code == 403
    assert (await client.get("/v1/admin/benefits", headers=auth_headers(app, veteran()))).status_code == 403
    assert (await client.get("/v1/admin/benefits")).status_code == 401


async def test_admin_list_pages(app, client):
    city = auth_headers(app, admin("city"))
    for i in range(5):
        assert (await client.post("/v1/admin/benefits", json={**DRAFT, "code": f"C{i}", "status": "draft"}, headers=city)).status_code == 201
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get("/v1/admin/benefits" + query, headers=city)).json()
        seen += [b["code"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"C{i}" for i in range(5)]
    drafts = (await client.get("/v1/admin/benefits?status=draft&limit=10", headers=city)).json()
    assert len(drafts["items"]) == 5
    assert (await client.get("/v1/admin/benefits?limit=0", headers=city)).status_code == 400
