"""One decoding path for request bodies (issue 11, defect 6): whatever a client sends, a body that
is not JSON, not UTF-8 or not of the declared types is a 400 problem, never a 500 or a silent
coercion."""

from __future__ import annotations

import pytest
from litestar import post
from litestar.params import JSONBody

from api.errors import PROBLEM_TYPE_PREFIX
from tests import tokens
from tests.authz.test_matrix import _path, app_routes
from tests.factories.world import build_matrix_world as build_world
from tests.factories.world import build_world as build_scan_world
from tests.foundation.test_http_contract import assert_problem

JSON = {"content-type": "application/json"}
NOT_UTF8 = b'{"code": "\xff\xfe", "username": "\xc3", "password": "x"}'


# A caller each route's guard admits (the body is read after the guard, before the handler).
_CALLER_BY_PREFIX = (
    ("/v1/admin/accounts", "security_admin"),  # 三员分立: accounts are the security administrator's only
    ("/v1/admin/", "city_admin"),
    ("/v1/merchant/", "other_staff"),
    ("/v1/me/", "veteran"),
    ("/v1/scans", "other_device"),
    ("/", "anonymous"),
)


@pytest.mark.parametrize("path", ["/v1/auth/staff", "/v1/auth/suishen"])
@pytest.mark.parametrize(
    "body",
    [
        NOT_UTF8,
        b'{"username": "a\\n\xff", "password": "x", "code": "a\\n\xff"}',  # after an escape
        b"\xff{}",
        '{"username": "张三", "password": "密码", "code": "张三"}'.encode("gb18030"),
    ],
    ids=["in-a-string", "after-an-escape", "before-the-json", "gb18030"],
)
async def test_a_body_that_is_not_utf8_is_400_on_the_login_routes(client, path, body):
    """Unauthenticated, so anyone on the internet could turn these into 500s before."""
    assert_problem(await client.post(path, content=body, headers=JSON), 400, "malformed-json")


async def test_a_declared_charset_does_not_change_the_answer(client):
    body = '{"username": "张三", "password": "密码"}'.encode("gbk")
    response = await client.post("/v1/auth/staff", content=body, headers={"content-type": "application/json; charset=gbk"})
    assert_problem(response, 400, "malformed-json")


async def test_every_route_that_reads_a_body_refuses_one_that_is_not_utf8(app, client, conn, redis):
    """The sweep: each POST/PUT/PATCH route of the app, called by a role its guards admit, with a
    body that is not UTF-8. A route that reads its body answers 400 `malformed-json` (the
    roster: its own `roster-encoding`); a route that reads none never answers 500."""
    world = await build_world(conn, redis, keyring=app.state.keyring)
    read_a_body = 0
    for key, route in app_routes(app):
        method = key.split(" ", 1)[0]
        if method not in ("POST", "PUT", "PATCH"):
            continue
        role = next(role for prefix, role in _CALLER_BY_PREFIX if route.path.startswith(prefix))
        handler, _ = route.route_handler_map[method]
        parameters = handler.parsed_fn_signature.parameters
        reads_body = "data" in parameters or "body" in parameters
        roster = key.endswith("/people/import")
        caller = tokens.auth_headers(app, tokens.admin("security")) if role == "security_admin" else world.headers(app, role)
        headers = {**caller, "content-type": "text/csv" if roster else "application/json"}
        response = await client.request(method, _path(route, world), content=NOT_UTF8, headers=headers)
        assert response.status_code < 500, (key, role, response.text)
        if reads_body:
            read_a_body += 1
            expected = "roster-encoding" if roster else "malformed-json"  # the roster names its encodings
            assert response.status_code == 400, (key, role, response.text)
            assert response.json()["type"] == PROBLEM_TYPE_PREFIX + expected, (key, response.text)
    assert read_a_body >= 20  # the sweep reached the routes it is about


async def test_a_raw_json_body_that_is_not_utf8_writes_nothing(app, client, conn):
    """The benefit definitions are decoded by the catalog (to name each bad node), not by Litestar."""
    city = tokens.auth_headers(app, tokens.admin("city"))
    response = await client.post("/v1/admin/benefits", content=b'{"code": "T\xff1"}', headers={**JSON, **city})
    assert_problem(response, 400, "malformed-json")
    assert await conn.fetchval("SELECT count(*) FROM benefits") == 0


@pytest.mark.parametrize(
    "field, value",
    [("benefit_id", "null"), ("benefit_id", ""), ("companions", "1"), ("companions", True), ("venue_id", None)],
)
async def test_a_scan_field_of_the_wrong_json_type_is_400_not_coerced(app, client, field, value):
    """A string is never null or a number: `"benefit_id": "null"` used to be taken as no benefit."""
    world = await build_scan_world(client, app)
    body = {"code": "CJ1:x", "venue_id": world.venue_id, field: value}
    body = assert_problem(await client.post("/v1/scans", json=body, headers=world.device_headers), 400, "invalid-request")
    assert [e["key"] for e in body["errors"]] == [field] and body["errors"][0]["source"] == "body"


async def test_a_code_request_with_the_string_null_is_400_and_real_null_is_fine(app, client):
    veteran = tokens.auth_headers(app, tokens.veteran())
    refused = await client.post("/v1/me/codes", json={"benefit_id": "null"}, headers=veteran)
    assert [e["key"] for e in assert_problem(refused, 400, "invalid-request")["errors"]] == ["benefit_id"]
    assert (await client.post("/v1/me/codes", json={"benefit_id": None}, headers=veteran)).status_code == 201
    assert (await client.post("/v1/me/codes", headers=veteran)).status_code == 201  # no body at all
    assert_problem(await client.post("/v1/me/codes", json=[], headers=veteran), 400, "invalid-request")


@post("/decodes-its-own-bytes", status_code=200, opt={"exclude_from_auth": True})
async def decodes_its_own_bytes(data: JSONBody[dict]) -> dict:
    b"\xff".decode()  # a bug of ours, not the client's body
    return data


async def test_an_undecodable_byte_that_is_not_the_clients_stays_a_500(app):
    from litestar.testing import AsyncTestClient

    app.register(decodes_its_own_bytes)
    async with AsyncTestClient(app=app) as client:
        response = await client.post("/decodes-its-own-bytes", json={"name": "张三"})
    assert_problem(response, 500, "internal-error")
