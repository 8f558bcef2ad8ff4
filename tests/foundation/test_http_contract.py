"""The HTTP contract every endpoint shares: problem+json errors, body limits, operations endpoints."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from litestar import post
from litestar.params import JSONBody

from api import create_app
from api.errors import PROBLEM_TYPE_PREFIX
from tests.support import live_server

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


async def test_health_and_ready(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}


@pytest.mark.parametrize("backend", ["postgres", "redis"])
async def test_ready_names_the_backend_that_is_down(settings, backend):
    from litestar.testing import AsyncTestClient

    broken = {
        "postgres": {"database_url": "postgresql://postgres@127.0.0.1:1/none"},
        "redis": {"redis_url": "redis://127.0.0.1:1/0"},
    }[backend]
    app = create_app(msgspec.structs.replace(settings, **broken))
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body[backend] == "down"
    assert body["down"] == backend
    other = "redis" if backend == "postgres" else "postgres"
    assert body[other] == "ok"


async def test_unknown_route_is_problem_404(client):
    assert_problem(await client.get("/v1/no-such-thing"), 404, "not-found")


async def test_wrong_method_is_problem_405(client):
    assert_problem(await client.delete("/health"), 405, "method-not-allowed")


async def test_metrics_are_prometheus_text(client):
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "chongjun_request_duration_seconds_bucket" in response.text
    assert "chongjun_pg_pool_max" in response.text


async def test_openapi_schema_is_3_1(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/ready" in schema["paths"]


async def test_request_id_is_echoed(client):
    response = await client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-Id": "x" * 500})
    assert len(generated.headers["x-request-id"]) == 16


class Greeting(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    times: int


@post("/echo", status_code=200)
async def echo(data: JSONBody[Greeting]) -> Greeting:
    return data


@pytest.fixture
async def echo_client(app):
    from litestar.testing import AsyncTestClient

    app.register(echo)
    async with AsyncTestClient(app=app) as client:
        yield client


async def test_malformed_json_is_400(echo_client):
    response = await echo_client.post("/echo", content=b'{"name": ', headers={"content-type": "application/json"})
    assert_problem(response, 400, "malformed-json")


async def test_wrong_types_are_400_with_the_field(echo_client):
    response = await echo_client.post("/echo", json={"name": "x", "times": "many"})
    body = assert_problem(response, 400, "invalid-request")
    assert "times" in response.text
    assert body["request_id"]


async def test_deeply_nested_body_is_400_not_500(echo_client):
    nested = b"[" * 100_000 + b"]" * 100_000
    response = await echo_client.post("/echo", content=nested, headers={"content-type": "application/json"})
    assert_problem(response, 400, "malformed-json")


async def test_oversized_body_is_413(echo_client):
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'", "times": 1}'
    response = await echo_client.post("/echo", content=big, headers={"content-type": "application/json"})
    assert_problem(response, 413, "body-too-large")


async def test_good_body_passes(echo_client):
    response = await echo_client.post("/echo", json={"name": "x", "times": 2})
    assert response.status_code == 200 and response.json() == {"name": "x", "times": 2}


def test_operations_over_real_http(settings):
    """A real server with 2 workers: readiness, problem+json 404, 405 and metrics."""
    with live_server(settings, workers=2) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        assert_problem(http.get("/nope"), 404, "not-found")
        assert_problem(http.post("/health", json={}), 405, "method-not-allowed")
        ready = http.get("/ready")
        assert ready.status_code == 200 and ready.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
        assert "chongjun_request_duration_seconds" in http.get("/metrics").text


async def test_nul_in_free_text_is_400_and_writes_nothing(app, client, conn):
    """PostgreSQL text cannot hold NUL. A field without its own pattern still gets a 400 problem
    (not a 500) and its transaction rolls back."""
    from tests.factories.world import credit_code
    from tests.tokens import admin, auth_headers

    response = await client.post(
        "/v1/admin/merchants",
        json={"name": "坏\u0000名", "credit_code": credit_code("310115"), "district": "310115",
              "contact_name": "王", "contact_phone": "021-68542000"},
        headers=auth_headers(app, admin("city")),
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "urn:chongjun:problem:invalid-text", response.json()
    assert await conn.fetchval("SELECT count(*) FROM merchants") == 0
