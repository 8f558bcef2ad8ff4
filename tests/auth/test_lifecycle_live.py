"""No token outlives what it stands for, across processes: `chongjun serve --workers 2`.

A merchant suspended or closed, a staff account disabled, a veteran logged out: the tokens in use
are refused by every worker within a second — with Redis up, and with Redis down (then the
workers read PostgreSQL). Each case first shows the token working (a scan accepted), then the
change, then polls from several keep-alive connections (which land on both workers).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

import identity
from identity import Principal
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_world, credit_code, suishen
from tests.support import live_server
from tests.tokens import admin, auth_headers

PASSWORD = "correct horse battery staple"
INVALID_TOKEN = "urn:chongjun:problem:invalid-token"
DEAD_REDIS = {"REDIS_URL": "redis://127.0.0.1:1/0"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


async def refused_within_a_second(base_url: str, change, requests) -> list[tuple[float, int]]:
    """Warm several connections with `requests` (each `(method, path, headers, json)`), run
    `change()`, then poll for 1.5 s; assert nothing is let through after 1 s and return what was seen."""
    pollers = [
        httpx.AsyncClient(base_url=base_url, timeout=10, limits=httpx.Limits(max_connections=1)) for _ in range(6)
    ]

    async def round_() -> list[httpx.Response]:
        return await asyncio.gather(
            *(p.request(method, path, headers=headers, json=body) for p in pollers for method, path, headers, body in requests)
        )

    try:
        for _ in range(3):
            assert {r.status_code for r in await round_()} == {200}
        await change()
        since = time.monotonic()
        seen: list[tuple[float, int]] = []
        while (elapsed := time.monotonic() - since) < 1.5:
            seen += [(elapsed, r.status_code) for r in await round_()]
    finally:
        for poller in pollers:
            await poller.aclose()
    late = [(t, s) for t, s in seen if s != 401 and t >= 1.0]
    assert not late, late
    assert {s for _, s in seen} <= {200, 401} and seen[-1][1] == 401 and len(seen) > 20
    return seen


async def _staff(client, city: dict, merchant_id: str, username: str) -> str:
    """A staff account made by the admin, its initial password replaced by its holder (issue 17)."""
    made = await client.post(
        "/v1/admin/staff", headers=city,
        json={"merchant_id": merchant_id, "username": username, "password": "initial " + PASSWORD, "role": "manager"},
    )
    assert made.status_code == 201, made.text
    changed = await client.post(
        "/v1/auth/password", json={"username": username, "password": "initial " + PASSWORD, "new_password": PASSWORD}
    )
    assert changed.status_code == 204, changed.text
    return made.json()["account"]["id"]


async def _login(http, username: str) -> httpx.Response:
    return await http.post("/v1/auth/staff", json={"username": username, "password": PASSWORD})


async def _scan(http, headers: dict, app, venue_id: str, id_number: str = VETERAN_ID) -> httpx.Response:
    body = {"code": suishen(app, id_number), "venue_id": venue_id}
    return await http.post("/v1/scans", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())})


async def _working_staff(http, app, venue_id: str, username: str) -> tuple[dict, dict, str]:
    """Log in and show the token works: a scan accepted. The session, its headers, the redemption."""
    login = await _login(http, username)
    assert login.status_code == 200, login.text
    staff = bearer(login.json()["access_token"])
    accepted = await _scan(http, staff, app, venue_id)
    assert accepted.status_code == 200 and accepted.json()["decision"] == "accepted", accepted.text
    return login.json(), staff, accepted.json()["redemption_id"]


@pytest.mark.parametrize("status", ["suspended", "closed"])
async def test_staff_of_a_suspended_or_closed_merchant_are_refused_by_every_worker(app, client, settings, status):
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    await _staff(client, city, world.merchant_id, "gate.manager")
    with live_server(settings, workers=2) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            session, staff, redemption_id = await _working_staff(http, app, world.venue_id, "gate.manager")

            async def close_the_merchant() -> None:
                changed = await http.patch(f"/v1/admin/merchants/{world.merchant_id}", headers=city, json={"status": status})
                assert changed.status_code == 200, changed.text

            await refused_within_a_second(base_url, close_the_merchant, [
                ("GET", "/v1/merchant/redemptions", staff, None),
                ("GET", "/v1/merchant/venues", staff, None),
            ])
            # Scan, reverse and read: the uniform 401; a new login: a clear 403.
            scan = await _scan(http, staff, app, world.venue_id, DISABLED_ID)
            assert scan.status_code == 401 and scan.json()["type"] == INVALID_TOKEN
            reversal = await http.post(f"/v1/scans/{redemption_id}/reversal", headers=staff, json={"reason": "test"})
            assert reversal.status_code == 401 and reversal.json()["type"] == INVALID_TOKEN
            again = await _login(http, "gate.manager")
            assert again.status_code == 403, again.text
            assert again.json()["type"] == "urn:chongjun:problem:merchant-inactive"
            refresh = await http.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
            assert refresh.status_code == 401
            # A wrong password still gets the uniform answer: the merchant's state is no oracle.
            wrong = await http.post("/v1/auth/staff", json={"username": "gate.manager", "password": "not it at all"})
            assert wrong.status_code == 401
            if status == "suspended":  # lifted: a new login works again
                lifted = await http.patch(f"/v1/admin/merchants/{world.merchant_id}", headers=city, json={"status": "active"})
                assert lifted.status_code == 200, lifted.text
                back = await _login(http, "gate.manager")
                assert back.status_code == 200, back.text
                assert (await http.get("/v1/merchant/venues", headers=bearer(back.json()["access_token"]))).status_code == 200


@pytest.mark.parametrize("change", [{"disabled": True}, {"role": "clerk"}], ids=["disabled", "role-changed"])
async def test_a_disabled_or_changed_staff_account_is_refused_by_every_worker(app, client, settings, change):
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    account_id = await _staff(client, city, world.merchant_id, "gate.clerk")
    with live_server(settings, workers=2) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            _, staff, _ = await _working_staff(http, app, world.venue_id, "gate.clerk")

            async def apply_change() -> None:
                changed = await http.patch(f"/v1/admin/staff/{account_id}", headers=city, json=change)
                assert changed.status_code == 200, changed.text

            await refused_within_a_second(base_url, apply_change, [("GET", "/v1/merchant/redemptions", staff, None)])
            scan = await _scan(http, staff, app, world.venue_id, DISABLED_ID)
            assert scan.status_code == 401 and scan.json()["type"] == INVALID_TOKEN
            again = await _login(http, "gate.clerk")
            if "disabled" in change:
                assert again.status_code == 401
            else:  # logging in again gives a token of the new role
                assert again.status_code == 200, again.text
                ring = app.state.keyring
                assert identity.verify_access_token(again.json()["access_token"], keyring=ring).role == "clerk"


async def test_logout_refuses_the_veterans_access_token_on_every_worker(app, client, settings):
    await build_world(client, app)
    with live_server(settings, workers=2) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            login = await http.post("/v1/auth/suishen", json={"code": suishen(app, VETERAN_ID)})
            assert login.status_code == 200, login.text
            session = login.json()
            veteran = bearer(session["access_token"])
            assert (await http.post("/v1/me/codes", headers=veteran, json={})).status_code == 201

            async def logout() -> None:
                out = await http.post("/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
                assert out.status_code == 204

            await refused_within_a_second(base_url, logout, [("GET", "/v1/me", veteran, None)])
            codes = await http.post("/v1/me/codes", headers=veteran, json={})
            assert codes.status_code == 401 and codes.json()["type"] == INVALID_TOKEN


async def test_with_redis_down_every_worker_reads_postgres_and_still_refuses(app, client, conn, settings):
    """No Redis at all: logins, logout, disabling and suspending all still end the tokens in use."""
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    other = await client.post("/v1/admin/merchants", headers=city, json={
        "name": "上海博物馆", "credit_code": credit_code("310115"), "district": "310115",
        "contact_name": "李", "contact_phone": "021-63723500",
    })
    assert other.status_code == 201, other.text
    other_id = other.json()["id"]
    clerk_id = await _staff(client, city, world.merchant_id, "down.clerk")
    await _staff(client, city, other_id, "down.manager")
    # Veteran login needs Redis (the 随申码 replay window), so this session is opened directly.
    person_id = await conn.fetchval("SELECT id FROM people LIMIT 1")
    veteran = await identity.issue_session(conn, Principal(kind="veteran", subject=person_id), keyring=app.state.keyring)
    with live_server(settings, workers=2, extra_env=DEAD_REDIS) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:

            async def logout() -> None:
                out = await http.post("/v1/auth/logout", json={"refresh_token": veteran.refresh_token})
                assert out.status_code == 204

            await refused_within_a_second(base_url, logout, [("GET", "/v1/me", bearer(veteran.access_token), None)])

            clerk = await _login(http, "down.clerk")
            assert clerk.status_code == 200, clerk.text

            async def disable() -> None:
                changed = await http.patch(f"/v1/admin/staff/{clerk_id}", headers=city, json={"disabled": True})
                assert changed.status_code == 200, changed.text

            clerk_headers = bearer(clerk.json()["access_token"])
            await refused_within_a_second(base_url, disable, [("GET", "/v1/merchant/venues", clerk_headers, None)])

            manager = await _login(http, "down.manager")
            assert manager.status_code == 200, manager.text

            async def suspend() -> None:
                changed = await http.patch(f"/v1/admin/merchants/{other_id}", headers=city, json={"status": "suspended"})
                assert changed.status_code == 200, changed.text

            manager_headers = bearer(manager.json()["access_token"])
            await refused_within_a_second(base_url, suspend, [("GET", "/v1/merchant/venues", manager_headers, None)])
            assert (await _login(http, "down.manager")).status_code == 403
