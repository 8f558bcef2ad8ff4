"""Authorization matrix: every route of the app × every role → no success that is not expected.

The routes come from the app's own route table, so a route added without an entry in
`tests/authz/matrix.py::EXPECT` fails here, as does a path parameter with no victim object.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from litestar.routes import HTTPRoute

from tests.authz.matrix import ADMIN_ROLES, EXPECT, PATH_PARAMS, Expect, route_key
from tests.factories.world import OTHER_DISTRICT, ROLES, MatrixWorld as World, build_matrix_world

_SKIPPED_METHODS = {"OPTIONS", "HEAD"}


def app_routes(app) -> list[tuple[str, HTTPRoute]]:
    keys = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(route.methods - _SKIPPED_METHODS):
            keys.append((route_key(method, route.path), route))
    return keys


def test_every_route_has_an_expectation(app):
    keys = {key for key, _ in app_routes(app)}
    missing = sorted(keys - EXPECT.keys())
    assert not missing, "routes without an entry in tests/authz/matrix.py EXPECT:\n" + "\n".join(missing)
    stale = sorted(EXPECT.keys() - keys)
    assert not stale, "EXPECT entries for routes the app does not have:\n" + "\n".join(stale)
    unknown = sorted({p for _, r in app_routes(app) for p in r.path_parameters} - PATH_PARAMS.keys())
    assert not unknown, f"path parameters with no victim object in PATH_PARAMS: {unknown}"


def test_admin_routes_admit_admins_only():
    """Device, veteran and staff tokens never reach admin routes (and the table cannot say otherwise)."""
    for key, expect in EXPECT.items():
        if key.split(" ", 1)[1].startswith("/v1/admin"):
            assert expect.allow <= ADMIN_ROLES, key


def _path(route: HTTPRoute, world) -> str:
    path = route.path
    for name, definition in route.path_parameters.items():
        path = path.replace("{" + definition.full + "}", PATH_PARAMS[name](world))
    return path


async def test_no_unexpected_success(app, client, conn, redis):
    world = await build_matrix_world(conn, redis, keyring=app.state.keyring)
    victim_ids = world.victim_ids()
    unexpected: list[str] = []
    # The control: every token of the matrix is genuine and live, so a refusal is the route's
    # authorization speaking, not a broken token (a device token that its check refuses would
    # make every device cell a 401 and the matrix pass for the wrong reason).
    token_refused: list[str] = []
    cells = 0
    started = time.perf_counter()
    # Refused roles first: the allowed ones may change the world (revoke, roll, disable).
    ordered = sorted(ROLES, key=lambda role: role in ("city_admin", "veteran"))
    for role in ordered:
        headers = world.headers(app, role)
        for key, route in app_routes(app):
            expect: Expect = EXPECT[key]
            method = key.split(" ", 1)[0]
            request = {"headers": headers}
            if expect.query:
                request["params"] = expect.query(world)
            if method in ("POST", "PUT", "PATCH"):
                request["json"] = expect.body(world) if expect.body else {}
            response = await client.request(method, _path(route, world), **request)
            cells += 1
            ok = 200 <= response.status_code < 400
            if role != "anonymous" and response.status_code == 401 and not key.split(" ", 1)[1].startswith("/v1/auth"):
                if response.json().get("type") == "urn:chongjun:problem:invalid-token":
                    token_refused.append(f"{role:22} {key}")
            if response.status_code >= 500:
                unexpected.append(f"{role:22} {key} -> {response.status_code} (server error)")
            elif ok and role not in expect.allow:
                unexpected.append(f"{role:22} {key} -> {response.status_code} (not in allow)")
            elif ok and role not in ("city_admin", "veteran") and not expect.public:
                leaked = [i for i in victim_ids if i in response.text]
                if leaked:
                    unexpected.append(f"{role:22} {key} -> {response.status_code} shows victim ids {leaked}")
    elapsed = time.perf_counter() - started
    assert not unexpected, f"{len(unexpected)} unexpected of {cells} cells:\n" + "\n".join(unexpected)
    assert not token_refused, "tokens refused as invalid (the matrix would prove nothing):\n" + "\n".join(token_refused)
    assert cells >= len(ROLES) * 10 and elapsed < 60


def _reaimed(body: Any, district: str) -> Any:
    """The body with every `district` it names set to the attacker's own: what a district admin
    would send to slip a victim object into their district (the body as given names the victim's)."""
    if isinstance(body, dict):
        return {k: (district if k == "district" else _reaimed(v, district)) for k, v in body.items()}
    if isinstance(body, list):
        return [_reaimed(v, district) for v in body]
    return body


def _swap_ids(value: Any, swaps: dict[str, str]) -> Any:
    text = json.dumps(value) if not isinstance(value, str) else value
    for old, new in swaps.items():
        text = text.replace(old, new)
    return text if isinstance(value, str) else json.loads(text)


def _requests(world: World, route: HTTPRoute, expect: Expect, role: str) -> list[dict[str, Any]]:
    """The requests a role sends to one route: as the table gives it and, for a foreign district
    admin, with the body re-aimed at their own district."""
    base: dict[str, Any] = {"path": _path(route, world)}
    if expect.query:
        base["params"] = expect.query(world)
    bodies = [expect.body(world) if expect.body else {}]
    if role == "other_district_admin" and expect.body and (reaimed := _reaimed(bodies[0], OTHER_DISTRICT)) != bodies[0]:
        bodies.append(reaimed)
    return [{**base, "json": body} for body in bodies]


async def test_foreign_objects_answer_as_missing_ones(app, client, conn, redis):
    """No existence oracle: for every route and every role that may not reach the victim, aiming at
    a victim object answers exactly what aiming at an id that does not exist answers (status and
    problem type), and so does a write re-aimed at the attacker's own district (issue 11, defect 4:
    a 310104 admin creating a venue for a 310115 merchant got 201, a random merchant id 404)."""
    world = await build_matrix_world(conn, redis, keyring=app.state.keyring)
    victims = world.victim_ids() + [str(world.benefit_id)]
    differ: list[str] = []
    reaimed_success: list[str] = []
    cells = 0
    for role in ROLES:
        if role in ("city_admin", "veteran"):
            continue  # the victim's own reach: they may tell a real object from a missing one
        headers = world.headers(app, role)
        for key, route in app_routes(app):
            expect = EXPECT[key]
            if role in expect.allow:
                continue
            method = key.split(" ", 1)[0]
            for request in _requests(world, route, expect, role):
                named = json.dumps(request)
                if not any(v in named for v in victims):
                    continue
                swaps = {v: str(uuid.uuid4()) for v in victims}
                missing = _swap_ids(request, swaps)
                answers = []
                for sent in (request, missing):
                    kwargs = {"headers": headers, "params": sent.get("params")}
                    if method in ("POST", "PUT", "PATCH"):
                        kwargs["json"] = sent["json"]
                    response = await client.request(method, sent["path"], **kwargs)
                    is_problem = response.headers.get("content-type", "").startswith("application/problem+json")
                    answers.append((response.status_code, response.json().get("type") if is_problem else None))
                cells += 1
                if answers[0] != answers[1]:
                    differ.append(f"{role:22} {key} victim {answers[0]} != missing {answers[1]} body={request.get('json')}")
                if 200 <= answers[0][0] < 300:
                    reaimed_success.append(f"{role:22} {key} -> {answers[0][0]} body={request.get('json')}")
    assert not differ, f"{len(differ)} of {cells} cells tell a victim object from a missing one:\n" + "\n".join(differ)
    assert not reaimed_success, "foreign callers succeeded on a victim object:\n" + "\n".join(reaimed_success)
    assert cells >= 50
