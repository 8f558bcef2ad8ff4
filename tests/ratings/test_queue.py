"""The admins' 差评 queue: district scope, no personal data, reply closes once, audited."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import OTHER_DISTRICT, build_rating_world, login, visit
from tests.tokens import admin, auth_headers, staff

PUDONG = "310115"
CASE_FIELDS = {
    "id", "status", "district", "stars", "comment", "at", "redemption_id", "service_day", "benefit_code", "venue",
    "merchant_id", "reply", "replied_by", "closed_at", "due_at", "overdue",
}


@pytest.fixture
async def world(app, client):
    return await build_rating_world(client, app)


async def complain(client, app, world, id_number, *, xuhui=False, stars=1, comment="排队太久") -> str:
    """A visit and its 差评; the id of the case it opened."""
    redemption_id = await visit(client, app, world, id_number, xuhui=xuhui)
    rated = await client.post(
        f"/v1/me/redemptions/{redemption_id}/rating", json={"stars": stars, "comment": comment},
        headers=await login(client, app, id_number),
    )
    assert rated.status_code == 201 and rated.json()["case_status"] == "open", rated.text
    return redemption_id


async def queue(client, headers, **params) -> list[dict]:
    response = await client.get("/v1/admin/ratings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_each_admin_sees_their_scope_and_no_person(app, client, conn, world):
    pudong = [await complain(client, app, world, VETERAN_ID), await complain(client, app, world, DISABLED_ID, stars=2)]
    xuhui = await complain(client, app, world, VETERAN_ID, xuhui=True, comment="门口没有指引")
    await visit(client, app, world, VETERAN_ID)  # not rated: no case

    city = await queue(client, auth_headers(app, admin("city")))
    auditor = await queue(client, auth_headers(app, admin("auditor")))
    in_pudong = await queue(client, auth_headers(app, admin("district", district=PUDONG)))
    in_xuhui = await queue(client, auth_headers(app, admin("district", district=OTHER_DISTRICT)))
    elsewhere = await queue(client, auth_headers(app, admin("district", district="310101")))

    assert [c["redemption_id"] for c in city] == [*pudong, xuhui]  # the open queue: oldest first
    assert auditor == city
    assert [c["redemption_id"] for c in in_pudong] == pudong and {c["district"] for c in in_pudong} == {PUDONG}
    assert [c["redemption_id"] for c in in_xuhui] == [xuhui] and in_xuhui[0]["district"] == OTHER_DISTRICT
    assert elsewhere == []

    case = in_xuhui[0]
    assert set(case) == CASE_FIELDS
    assert case["status"] == "open" and case["stars"] == 1 and case["comment"] == "门口没有指引"
    assert case["venue"] == {"id": world.xuhui_venue_id, "name_zh": "徐汇馆"} and case["benefit_code"] == "C9"
    assert case["reply"] is None and case["replied_by"] is None and case["closed_at"] is None
    # Nothing that points at a person: no person id, ID number, name or masked name.
    people = await conn.fetch("SELECT id::text AS id, name_masked, id_masked FROM people")
    text = str(city)
    for person in people:
        for value in person.values():
            assert value not in text
    for secret in (VETERAN_ID, DISABLED_ID, "张三丰", "欧阳娜娜", "person"):
        assert secret not in text


async def test_only_admins_read_the_queue(app, client, world):
    for headers in (
        await login(client, app, VETERAN_ID), world.pudong.device_headers, auth_headers(app, staff()), {},
    ):
        response = await client.get("/v1/admin/ratings", headers=headers)
        assert response.status_code in (401, 403), response.text


async def test_reply_closes_the_case_once_and_is_audited(app, client, conn, world):
    redemption_id = await complain(client, app, world, VETERAN_ID)
    case_id = (await queue(client, auth_headers(app, admin("city"))))[0]["id"]
    officer = uuid.uuid4()
    pudong_admin = auth_headers(app, admin("district", district=PUDONG, account_id=officer))

    answered = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": " 已约谈场馆，增设引导员 "}, headers=pudong_admin)
    assert answered.status_code == 200, answered.text
    case = answered.json()
    assert case["status"] == "closed" and case["reply"] == "已约谈场馆，增设引导员"
    assert case["replied_by"] == str(officer) and case["closed_at"]

    again = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": "再答一次"}, headers=auth_headers(app, admin("city")))
    assert again.status_code == 409 and again.json()["type"] == "urn:chongjun:problem:rating-case-closed"
    assert await conn.fetchval("SELECT reply FROM rating_cases") == "已约谈场馆，增设引导员"

    assert await queue(client, pudong_admin) == []
    closed = await queue(client, pudong_admin, status="closed")
    assert [c["id"] for c in closed] == [case_id] and closed[0] == case

    audit = await conn.fetch("SELECT actor_kind, actor_id, action, object_kind, object_id, district, detail FROM audit_log WHERE object_kind = 'rating_case'")
    assert len(audit) == 1
    row = audit[0]
    assert (row["actor_kind"], row["actor_id"], row["action"], row["object_id"], row["district"]) == (
        "admin", str(officer), "rating_case.reply", case_id, PUDONG,
    )
    # Free text stays out of the archive: its length and digest only.
    assert "reply" not in row["detail"] and row["detail"]["redemption_id"] == redemption_id
    assert row["detail"]["reply_chars"] == len("已约谈场馆，增设引导员")
    assert row["detail"]["reply_sha256"] == hashlib.sha256("已约谈场馆，增设引导员".encode()).hexdigest()

    # The holder sees the answer to their 差评.
    rating = (await client.get(f"/v1/me/redemptions/{redemption_id}", headers=await login(client, app, VETERAN_ID))).json()["rating"]
    assert rating["case_status"] == "closed" and rating["reply"] == "已约谈场馆，增设引导员" and rating["replied_at"]


async def test_another_district_cannot_answer_and_cannot_tell_the_case_exists(app, client, conn, world):
    await complain(client, app, world, VETERAN_ID)
    case_id = (await queue(client, auth_headers(app, admin("city"))))[0]["id"]
    xuhui_admin = auth_headers(app, admin("district", district=OTHER_DISTRICT))

    foreign = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": "越权答复"}, headers=xuhui_admin)
    unknown = await client.post(f"/v1/admin/ratings/{uuid.uuid4()}/reply", json={"reply": "越权答复"}, headers=xuhui_admin)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["type"] == unknown.json()["type"] == "urn:chongjun:problem:rating-case-not-found"
    assert foreign.json()["detail"] == unknown.json()["detail"]

    auditor = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": "审计不答复"}, headers=auth_headers(app, admin("auditor")))
    assert auditor.status_code == 403
    veteran = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": "自问自答"}, headers=await login(client, app, VETERAN_ID))
    assert veteran.status_code == 403

    assert await conn.fetchval("SELECT status FROM rating_cases") == "open"
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE object_kind = 'rating_case'") == 0


@pytest.mark.parametrize("body", [{}, {"reply": ""}, {"reply": "   "}, {"reply": "复" * 1001}, {"reply": "好", "status": "open"}, {"reply": "a\u0000b"}])
async def test_a_bad_reply_is_a_4xx_problem_and_the_case_stays_open(app, client, conn, world, body):
    await complain(client, app, world, VETERAN_ID)
    case_id = await conn.fetchval("SELECT id::text FROM rating_cases")
    response = await client.post(f"/v1/admin/ratings/{case_id}/reply", json=body, headers=auth_headers(app, admin("city")))
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT status FROM rating_cases") == "open"


async def test_concurrent_replies_close_the_case_exactly_once(app, client, conn, world):
    await complain(client, app, world, VETERAN_ID)
    case_id = await conn.fetchval("SELECT id::text FROM rating_cases")
    replies = await asyncio.gather(*[
        client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": f"答复 {i}"}, headers=auth_headers(app, admin("city")))
        for i in range(10)
    ])
    assert sorted(r.status_code for r in replies) == [200] + [409] * 9
    winner = next(r.json() for r in replies if r.status_code == 200)
    assert await conn.fetchval("SELECT reply FROM rating_cases") == winner["reply"]
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'rating_case.reply'") == 1


async def test_the_queue_pages_in_order(app, client, conn, world):
    opened = [await complain(client, app, world, VETERAN_ID, comment=f"第{i}条") for i in range(5)]
    city = auth_headers(app, admin("city"))

    async def walk(**params) -> tuple[list[str], int]:
        seen, pages, cursor = [], 0, None
        while True:
            response = await client.get("/v1/admin/ratings", params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})}, headers=city)
            assert response.status_code == 200, response.text
            seen += [c["redemption_id"] for c in response.json()["items"]]
            pages += 1
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return seen, pages

    assert await walk(status="open") == (opened, 3)  # oldest first
    case_ids = {r["rid"]: r["id"] for r in await conn.fetch(
        "SELECT g.redemption_id::text AS rid, c.id::text AS id FROM rating_cases c JOIN ratings g ON g.id = c.rating_id"
    )}
    answered = [opened[3], opened[0], opened[4]]
    for rid in answered:
        ok = await client.post(f"/v1/admin/ratings/{case_ids[rid]}/reply", json={"reply": "已处理"}, headers=city)
        assert ok.status_code == 200, ok.text
    assert await walk(status="closed") == (list(reversed(answered)), 2)  # most recently answered first
    assert await walk() == ([opened[1], opened[2]], 1)  # status defaults to the open queue

    bad = await client.get("/v1/admin/ratings", params={"status": "pending"}, headers=city)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
    bad_cursor = await client.get("/v1/admin/ratings", params={"cursor": "%%%"}, headers=city)
    assert bad_cursor.status_code == 400 and bad_cursor.json()["type"] == "urn:chongjun:problem:invalid-cursor"
