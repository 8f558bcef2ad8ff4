"""One paging rule everywhere (issue 10 §3): `Page[T]`, one cursor codec, limit 1..100 default 20,
one 400 `invalid-cursor`. Before, the catalog answered a bad cursor with 422 `invalid-benefit`
and took limits up to 200, while merchants and ratings said 400 `invalid-cursor` and 100."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

import pytest

from foundation.paging import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor, decode_cursor, encode_cursor, fetch_size, page_of
from tests.foundation.test_http_contract import assert_problem
from tests.tokens import admin, auth_headers


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_round_trips_and_anything_else_is_one_error():
    at, row_id = datetime(2026, 11, 3, 2, 0, 0, 123456, tzinfo=timezone.utc), uuid.uuid4()
    cursor = encode_cursor(at, row_id)
    assert decode_cursor(cursor) == (at, row_id) and "=" not in cursor
    assert decode_cursor(None) is None and decode_cursor("") is None
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for bad in ("garbage!", flipped, _b64(b'["yesterday", "nope"]'), _b64(b'{"at": 1}'), _b64(b"[1, 2, 3]"), "x" * 500):
        with pytest.raises(InvalidCursor) as caught:
            decode_cursor(bad)
        assert caught.value.type == "invalid-cursor"
    # A hand-made cursor without an offset is read as UTC: a cursor is a position, not a capability.
    assert decode_cursor(_b64(f'["2999-01-01T00:00:00", "{row_id}"]'.encode()))[0].tzinfo is not None


def test_the_limit_rule_and_page_cutting():
    assert (DEFAULT_LIMIT, MAX_LIMIT) == (20, 100)
    assert fetch_size(1) == 2 and fetch_size(MAX_LIMIT) == MAX_LIMIT + 1
    for bad in (0, MAX_LIMIT + 1):
        with pytest.raises(ValueError):
            fetch_size(bad)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [{"id": uuid.UUID(int=i), "created_at": at} for i in range(3)]
    page = page_of(rows, 2, lambda row: row["id"].int)
    assert page.items == [0, 1] and decode_cursor(page.next_cursor) == (at, uuid.UUID(int=1))
    assert page_of(rows[:2], 2, lambda row: row["id"].int).next_cursor is None


def test_every_list_route_declares_the_same_limit_and_cursor(app):
    """The OpenAPI of every route that takes `limit` says 1..100, default 20, and also takes `cursor`."""
    spec = app.openapi_schema.to_schema()
    paged = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            params = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
            if "limit" not in params and "cursor" not in params:
                continue
            paged += 1
            limit = params["limit"]["schema"]
            assert (limit.get("minimum"), limit.get("maximum"), limit.get("default")) == (1, MAX_LIMIT, DEFAULT_LIMIT), (method, path, limit)
            cursor = params["cursor"]["schema"]
            assert any(s.get("maxLength") == 200 for s in [cursor, *cursor.get("oneOf", [])]), (method, path, cursor)
    assert paged >= 8  # merchants, venues, devices (admin and merchant), staff, redemptions, benefits, ratings


@pytest.mark.parametrize(
    "path",
    ["/v1/admin/benefits", "/v1/admin/merchants", "/v1/admin/venues", "/v1/admin/devices", "/v1/admin/staff", "/v1/admin/ratings"],
)
async def test_every_admin_list_answers_the_same_problems(app, client, path):
    city = auth_headers(app, admin("city"))
    assert_problem(await client.get(path, params={"cursor": "not-a-cursor"}, headers=city), 400, "invalid-cursor")
    assert_problem(await client.get(path, params={"limit": MAX_LIMIT + 1}, headers=city), 400, "invalid-request")
    assert_problem(await client.get(path, params={"limit": 0}, headers=city), 400, "invalid-request")
    ok = await client.get(path, params={"limit": MAX_LIMIT}, headers=city)
    assert ok.status_code == 200 and set(ok.json()) == {"items", "next_cursor"}


async def test_the_default_page_is_twenty(app, client):
    city = auth_headers(app, admin("city"))
    from tests.merchants.test_api import create_merchant

    created = [await create_merchant(client, city, name=f"商户{i}") for i in range(DEFAULT_LIMIT + 1)]
    first = (await client.get("/v1/admin/merchants", headers=city)).json()
    assert [m["id"] for m in first["items"]] == [m["id"] for m in created[:DEFAULT_LIMIT]] and first["next_cursor"]
    rest = (await client.get("/v1/admin/merchants", params={"cursor": first["next_cursor"]}, headers=city)).json()
    assert [m["id"] for m in rest["items"]] == [created[-1]["id"]] and rest["next_cursor"] is None
