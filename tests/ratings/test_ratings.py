"""POST /v1/me/redemptions/{id}/rating: once, only one's own visit; a 差评 opens a case atomically."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import OTHER_DISTRICT, build_rating_world, login, reverse, visit

PROBLEM = "application/problem+json"


@pytest.fixture
async def world(app, client):
    return await build_rating_world(client, app)


def rate(client, redemption_id, headers, **body):
    return client.post(f"/v1/me/redemptions/{redemption_id}/rating", json=body, headers=headers)


async def test_rate_once_and_see_it_in_my_history(app, client, conn, world):
    own = await visit(client, app, world, VETERAN_ID)
    mine = await login(client, app, VETERAN_ID)

    rated = await rate(client, own, mine, stars=5, comment="  讲解员很耐心  ")
    assert rated.status_code == 201, rated.text
    body = rated.json()
    assert body["redemption_id"] == own and body["stars"] == 5 and body["comment"] == "讲解员很耐心"
    assert body["case_status"] is None and body["reply"] is None
    assert await conn.fetchval("SELECT count(*) FROM rating_cases") == 0  # a 好评 opens no case

    shown = (await client.get(f"/v1/me/redemptions/{own}", headers=mine)).json()["rating"]
    assert shown == body
    listed = (await client.get("/v1/me/redemptions", headers=mine)).json()["items"][0]["rating"]
    assert listed == body

    again = await rate(client, own, mine, stars=1)
    assert again.status_code == 409 and again.headers["content-type"].startswith(PROBLEM)
    assert again.json()["type"] == "urn:chongjun:problem:already-rated"
    row = await conn.fetchrow("SELECT stars, comment, person_id::text AS person_id, venue_id::text AS venue_id FROM ratings")
    assert (row["stars"], row["comment"], row["venue_id"]) == (5, "讲解员很耐心", world.pudong.venue_id)
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 1
    assert await conn.fetchval("SELECT count(*) FROM rating_cases") == 0


async def test_another_persons_visit_or_an_unknown_id_is_404_and_writes_nothing(app, client, conn, world):
    theirs = await visit(client, app, world, DISABLED_ID)
    mine = await login(client, app, VETERAN_ID)
    stolen = await rate(client, theirs, mine, stars=1, comment="冒名差评")
    unknown = await rate(client, uuid.uuid4(), mine, stars=1)
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json()["type"] == unknown.json()["type"] == "urn:chongjun:problem:redemption-not-found"
    assert stolen.json()["detail"] == unknown.json()["detail"]
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 0
    assert await conn.fetchval("SELECT count(*) FROM rating_cases") == 0
    # The holder can still rate it.
    assert (await rate(client, theirs, await login(client, app, DISABLED_ID), stars=4)).status_code == 201


async def test_a_reversal_row_is_not_rateable_but_the_reversed_visit_is(app, client, conn, world):
    """Decision: the reversal row is the holder's own event (GET shows it) but not a visit, so 409
    `not-rateable` rather than a 404 that would contradict GET; the reversed visit itself may be
    rated, since a visit the venue undid is exactly what a holder may want to complain about."""
    own = await visit(client, app, world, VETERAN_ID)
    reversal = await reverse(client, world, own)
    mine = await login(client, app, VETERAN_ID)

    refused = await rate(client, reversal, mine, stars=1)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:chongjun:problem:not-rateable"
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 0

    someone_elses_reversal = await rate(client, reversal, await login(client, app, DISABLED_ID), stars=1)
    assert someone_elses_reversal.status_code == 404

    assert (await rate(client, own, mine, stars=2, comment="扫错了还让我重新排队")).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"stars": 0},
        {"stars": 6},
        {"stars": -1},
        {"stars": 4.5},
        {"stars": True},
        {"stars": None},
        {"stars": 3, "comment": "长" * 501},
        {"stars": 3, "comment": 7},
        {"stars": 3, "comment": "bad\u0000byte"},
        {"stars": 3, "person_id": str(uuid.uuid4())},
        [5],
        "5",
    ],
)
async def test_a_bad_body_is_a_400_problem_and_writes_nothing(app, client, conn, world, body):
    own = await visit(client, app, world, VETERAN_ID)
    response = await client.post(f"/v1/me/redemptions/{own}/rating", json=body, headers=await login(client, app, VETERAN_ID))
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 0


async def test_malformed_json_is_a_400(app, client, conn, world):
    own = await visit(client, app, world, VETERAN_ID)
    headers = {**await login(client, app, VETERAN_ID), "content-type": "application/json"}
    response = await client.post(f"/v1/me/redemptions/{own}/rating", content=b'{"stars": 3,', headers=headers)
    assert response.status_code == 400 and response.json()["type"] == "urn:chongjun:problem:malformed-json"
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 0


async def test_a_500_character_comment_is_kept_whole(app, client, conn, world):
    own = await visit(client, app, world, VETERAN_ID)
    text = "好\n" * 250  # line breaks are text; only the outer whitespace is stripped
    rated = await rate(client, own, await login(client, app, VETERAN_ID), stars=3, comment="评" + text[:-1])
    assert rated.status_code == 201, rated.text
    assert await conn.fetchval("SELECT length(comment) FROM ratings") == 500


@pytest.mark.parametrize("stars,opens", [(1, True), (2, True), (3, False), (5, False)])
async def test_a_low_rating_opens_a_case_for_the_venues_district(app, client, conn, world, stars, opens):
    pudong = await visit(client, app, world, VETERAN_ID)
    xuhui = await visit(client, app, world, VETERAN_ID, xuhui=True)
    mine = await login(client, app, VETERAN_ID)
    for redemption_id in (pudong, xuhui):
        rated = await rate(client, redemption_id, mine, stars=stars)
        assert rated.status_code == 201, rated.text
        assert rated.json()["case_status"] == ("open" if opens else None)
    cases = await conn.fetch(
        "SELECT c.district, c.status, g.redemption_id::text AS rid FROM rating_cases c JOIN ratings g ON g.id = c.rating_id"
        " ORDER BY c.district"
    )
    expected = [(OTHER_DISTRICT, "open", xuhui), ("310115", "open", pudong)] if opens else []
    assert [(c["district"], c["status"], c["rid"]) for c in cases] == expected


async def test_a_case_that_cannot_be_written_leaves_no_rating(app, client, conn, world):
    """The rating and its case commit together or not at all (a broken case table refuses both)."""
    own = await visit(client, app, world, VETERAN_ID)
    await conn.execute(
        """
        CREATE FUNCTION refuse_case() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'case table broken'; END; $$;
        CREATE TRIGGER refuse_case BEFORE INSERT ON rating_cases FOR EACH ROW EXECUTE FUNCTION refuse_case();
        """
    )
    mine = await login(client, app, VETERAN_ID)
    failed = await rate(client, own, mine, stars=1, comment="差")
    assert failed.status_code == 500
    assert await conn.fetchval("SELECT count(*) FROM ratings") == 0
    await conn.execute("DROP TRIGGER refuse_case ON rating_cases")
    retried = await rate(client, own, mine, stars=1, comment="差")
    assert retried.status_code == 201, retried.text
    assert await conn.fetchval("SELECT count(*) FROM rating_cases") == 1


async def test_concurrent_ratings_of_one_visit_give_exactly_one_201(app, client, conn, world):
    own = await visit(client, app, world, VETERAN_ID)
    mine = await login(client, app, VETERAN_ID)
    replies = await asyncio.gather(*[rate(client, own, mine, stars=1 + i % 5, comment=f"第{i}次") for i in range(20)])
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 19, codes
    assert {r.json()["type"] for r in replies if r.status_code == 409} == {"urn:chongjun:problem:already-rated"}
    winner = next(r.json() for r in replies if r.status_code == 201)
    stored = await conn.fetchrow("SELECT stars, comment FROM ratings WHERE redemption_id = $1::uuid", own)
    assert (stored["stars"], stored["comment"]) == (winner["stars"], winner["comment"])
    assert await conn.fetchval("SELECT count(*) FROM rating_cases") == (1 if winner["stars"] <= 2 else 0)


async def test_ratings_are_append_only(app, client, conn, world):
    own = await visit(client, app, world, VETERAN_ID)
    assert (await rate(client, own, await login(client, app, VETERAN_ID), stars=4)).status_code == 201
    import asyncpg

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE ratings SET stars = 1")
