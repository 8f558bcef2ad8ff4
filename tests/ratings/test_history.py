"""GET /v1/me/redemptions[/{id}]: a veteran's own ledger events, newest first, paged; nobody else's."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_rating_world, login, reverse, visit

ITEM_FIELDS = {"id", "kind", "at", "service_day", "benefit", "venue", "companions", "reversed", "reverses", "rating"}
PROBLEM = "application/problem+json"


@pytest.fixture
async def world(app, client):
    return await build_rating_world(client, app)


async def all_pages(client, headers, *, limit: int) -> tuple[list[dict], int]:
    items, pages, cursor = [], 0, None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/me/redemptions", params=params, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= limit
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def test_history_is_mine_newest_first_across_pages(app, client, world):
    mine = [await visit(client, app, world, VETERAN_ID) for _ in range(4)]
    mine.append(await visit(client, app, world, VETERAN_ID, xuhui=True))
    reversal = await reverse(client, world, mine[1])
    theirs = [await visit(client, app, world, DISABLED_ID) for _ in range(2)]

    items, pages = await all_pages(client, await login(client, app, VETERAN_ID), limit=2)

    assert pages == 3
    assert [i["id"] for i in items] == [reversal, *reversed(mine)]  # newest first, each event once
    assert not set(theirs) & {i["id"] for i in items}
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    by_id = {i["id"]: i for i in items}
    assert all(set(i) == ITEM_FIELDS for i in items)
    undone = by_id[reversal]
    assert undone["kind"] == "reversal" and undone["reverses"] == mine[1] and undone["rating"] is None
    assert by_id[mine[1]]["reversed"] is True and by_id[mine[0]]["reversed"] is False
    first = by_id[mine[0]]
    assert first["kind"] == "redemption" and first["reverses"] is None and first["companions"] == 0
    assert first["benefit"]["code"] == "C8" and first["benefit"]["name_zh"] == "上海科技馆"
    assert first["venue"] == {"id": world.pudong.venue_id, "name_zh": "主馆"}
    assert by_id[mine[4]]["venue"] == {"id": world.xuhui_venue_id, "name_zh": "徐汇馆"}
    assert by_id[mine[4]]["benefit"]["code"] == "C9"

    other_items, _ = await all_pages(client, await login(client, app, DISABLED_ID), limit=100)
    assert [i["id"] for i in other_items] == list(reversed(theirs))


async def test_default_page_is_twenty(app, client, world):
    events = [await visit(client, app, world, VETERAN_ID) for _ in range(21)]
    headers = await login(client, app, VETERAN_ID)
    first = (await client.get("/v1/me/redemptions", headers=headers)).json()
    assert len(first["items"]) == 20 and first["next_cursor"]
    rest = (await client.get("/v1/me/redemptions", params={"cursor": first["next_cursor"]}, headers=headers)).json()
    assert [i["id"] for i in rest["items"]] == [events[0]] and rest["next_cursor"] is None


async def test_someone_with_no_visits_gets_an_empty_page(app, client, world):
    await visit(client, app, world, VETERAN_ID)
    empty = await client.get("/v1/me/redemptions", headers=await login(client, app, DISABLED_ID))
    assert empty.status_code == 200 and empty.json() == {"items": [], "next_cursor": None}


async def test_one_event_mine_or_the_same_404(app, client, world):
    own = await visit(client, app, world, VETERAN_ID)
    reversal = await reverse(client, world, own)
    mine = await login(client, app, VETERAN_ID)

    got = await client.get(f"/v1/me/redemptions/{own}", headers=mine)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == own and got.json()["reversed"] is True
    assert (await client.get(f"/v1/me/redemptions/{reversal}", headers=mine)).json()["reverses"] == own

    someone_else = await client.get(f"/v1/me/redemptions/{own}", headers=await login(client, app, DISABLED_ID))
    unknown = await client.get(f"/v1/me/redemptions/{uuid.uuid4()}", headers=mine)
    assert someone_else.status_code == unknown.status_code == 404
    assert someone_else.headers["content-type"].startswith(PROBLEM)
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}
    assert strip(someone_else) == strip(unknown)
    assert someone_else.json()["type"] == "urn:chongjun:problem:redemption-not-found"
    assert own not in someone_else.text


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"cursor": "not a cursor!"},
        {"cursor": "x" * 201},
        {"cursor": base64.urlsafe_b64encode(b'["yesterday", "nope"]').decode()},
        {"cursor": base64.urlsafe_b64encode(b'{"at": 1}').decode()},
    ],
)
async def test_bad_paging_is_a_400_problem(app, client, world, params):
    response = await client.get("/v1/me/redemptions", params=params, headers=await login(client, app, VETERAN_ID))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].startswith("urn:chongjun:problem:")


async def test_a_forged_but_well_formed_cursor_only_pages(app, client, world):
    """A cursor is no capability: one naming another's event (or a naive time) still pages only mine."""
    theirs = await visit(client, app, world, DISABLED_ID)
    mine = await visit(client, app, world, VETERAN_ID)
    forged = base64.urlsafe_b64encode(f'["2999-01-01T00:00:00", "{theirs}"]'.encode()).decode().rstrip("=")
    page = await client.get("/v1/me/redemptions", params={"cursor": forged}, headers=await login(client, app, VETERAN_ID))
    assert page.status_code == 200, page.text
    assert [i["id"] for i in page.json()["items"]] == [mine]


async def test_history_needs_a_veteran(app, client, world):
    from tests.tokens import admin, auth_headers

    assert (await client.get("/v1/me/redemptions")).status_code == 401
    assert (await client.get("/v1/me/redemptions", headers=world.pudong.device_headers)).status_code == 403
    assert (await client.get("/v1/me/redemptions", headers=auth_headers(app, admin("city")))).status_code == 403
