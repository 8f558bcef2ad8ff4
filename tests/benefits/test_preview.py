"""The rule editor's preview: the same validation as a create, an explanation, nothing stored."""

from __future__ import annotations

from tests.factories.world import BENEFIT_DRAFT
from tests.foundation.test_http_contract import assert_problem
from tests.tokens import admin, auth_headers, veteran


def _draft(**changes):
    return {**BENEFIT_DRAFT, **changes}


async def test_preview_explains_the_rule_for_a_sample_person_in_zh_and_en(app, client, conn):
    rule = {"op": "all", "all": [{"op": "has_category", "category": "DISABLED_SERVICEMAN"},
                                 {"op": "disability_grade", "min": 1, "max": 4}]}
    body = {"benefit": _draft(rule=rule), "person": {"categories": ["VETERAN", "DISABLED_SERVICEMAN"], "disability_grade": 6}}
    before = await conn.fetchval("SELECT count(*) FROM benefit_versions")
    response = await client.post("/v1/admin/benefits/preview", json=body, headers=auth_headers(app, admin("district", district="310104")))
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["decision"]["eligible"] is False
    assert preview["decision"]["clause"] == "$.rule.all[1]"
    assert "残疾" in preview["rule_summary_zh"] and preview["rule_summary_en"]
    assert [c["held"] for c in preview["clauses"]][1:] == [True, False]
    body["person"]["disability_grade"] = 2
    eligible = (await client.post("/v1/admin/benefits/preview", json=body, headers=auth_headers(app, admin("city")))).json()
    assert eligible["decision"]["eligible"] is True and eligible["decision"]["message_zh"]
    assert await conn.fetchval("SELECT count(*) FROM benefit_versions") == before  # nothing stored


async def test_preview_names_the_bad_node(app, client):
    broken = {"op": "all", "all": [{"op": "has_category", "category": "VETERAN"}, {"op": "disability_grade", "min": 7, "max": 2}]}
    body = {"benefit": _draft(rule=broken), "person": {"categories": ["VETERAN"]}}
    response = await client.post("/v1/admin/benefits/preview", json=body, headers=auth_headers(app, admin("city")))
    assert_problem(response, 422, "invalid-rule")
    assert response.json()["errors"][0]["path"].startswith("$.rule.all[1]")
    person = {"benefit": _draft(), "person": {"categories": ["NOT_A_CATEGORY"]}}
    response = await client.post("/v1/admin/benefits/preview", json=person, headers=auth_headers(app, admin("city")))
    assert_problem(response, 422, "invalid-benefit")
    assert response.json()["errors"][0]["path"] == "$.person.categories[0]"
    bad_json = await client.post("/v1/admin/benefits/preview", content=b"{", headers={**auth_headers(app, admin("city")), "Content-Type": "application/json"})
    assert bad_json.status_code == 400


async def test_preview_is_for_admins(app, client):
    body = {"benefit": _draft(), "person": {"categories": ["VETERAN"]}}
    assert (await client.post("/v1/admin/benefits/preview", json=body)).status_code == 401
    vet = await client.post("/v1/admin/benefits/preview", json=body, headers=auth_headers(app, veteran()))
    assert vet.status_code == 403
