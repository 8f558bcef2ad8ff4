"""The public catalog over HTTP after the demo seed."""

from __future__ import annotations

import uuid

from chongjun.demo import seed_demo
from tests.benefits.test_demo_seed import CODES
from tests.foundation.test_http_contract import assert_problem


async def test_the_catalog_lists_every_reference_item(client, conn, redis, settings):
    await seed_demo(conn, redis, settings)
    response = await client.get("/v1/benefits")
    assert response.status_code == 200
    items = response.json()["items"]
    assert sorted(i["code"] for i in items) == sorted(CODES)
    assert {i["domain"] for i in items} == {"culture", "tourism", "transit"}
    t1 = next(i for i in items if i["code"] == "T1")
    assert t1["name_zh"] and t1["name_en"] and t1["value"] == {"kind": "free"}
    assert t1["rule_summary_zh"] == "身份为残疾军人"
    assert {v["name_zh"] for v in t1["venues"]} == {"人民广场公交枢纽站", "曹杨路公交枢纽站"}
    assert all(v["location"] for v in t1["venues"])

    one = await client.get(f"/v1/benefits/{t1['id']}")
    assert one.status_code == 200 and one.json()["code"] == "T1" and one.json()["venues"]
    assert_problem(await client.get(f"/v1/benefits/{uuid.uuid4()}"), 404, "benefit-not-found")
    assert_problem(await client.get("/v1/benefits/not-a-uuid"), 404, "not-found")


async def test_the_schema_documents_the_catalog(client):
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/v1/benefits" in schema["paths"] and "/v1/benefits/{benefit_id}" in schema["paths"]


async def test_a_stale_token_does_not_close_the_public_catalog(client):
    response = await client.get("/v1/benefits", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 200 and response.json() == {"items": []}
