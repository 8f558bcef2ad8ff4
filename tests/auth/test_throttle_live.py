"""The login throttle under concurrency, over real HTTP against `chongjun serve --workers 2`.

"Evaluated" is what a caller can observe: an attempt whose password was checked answers 401
`invalid-credentials`; one the throttle refused before any check answers 429 `login-throttled`.
So the number of 401s in a burst is the number of passwords the server tried.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import msgspec

import identity
from identity import NewAccount
from identity.throttle import CLIENT_FAILURE_LIMIT, USER_FAILURE_LIMIT
from tests.support import live_server

PASSWORD = "correct horse battery staple"
INVALID = "urn:chongjun:problem:invalid-credentials"
THROTTLED = "urn:chongjun:problem:login-throttled"
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there


async def _account(conn, username: str) -> None:
    new = {"kind": "admin", "username": username, "password": PASSWORD, "role": "auditor"}
    await identity.create_account(conn, msgspec.convert(new, NewAccount))


async def _burst(base_url: str, bodies: list[dict]) -> Counter:
    """Send every body at once; count the answers by problem type (the status for a success)."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        answers = await asyncio.gather(*(http.post("/v1/auth/staff", json=body) for body in bodies))
    seen = Counter()
    for answer in answers:
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) > 0
        seen[answer.json()["type"] if answer.status_code >= 400 else answer.status_code] += 1
    return seen


async def _login(base_url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        return await http.post("/v1/auth/staff", json={"username": username, "password": password})


async def _fifty_wrong_then_right(base_url: str) -> None:
    wrong = [{"username": "target", "password": f"guess number {n}"} for n in range(50)]
    seen = await _burst(base_url, wrong)
    assert seen == {INVALID: USER_FAILURE_LIMIT, THROTTLED: 50 - USER_FAILURE_LIMIT}
    # The username is spent for its window, even for the right password...
    assert (await _login(base_url, "target")).json()["type"] == THROTTLED
    # ...but the address is not (5 of its 30), so another account still logs in from it.
    assert (await _login(base_url, "bystander")).status_code == 200


async def test_fifty_concurrent_wrong_passwords_for_one_username(settings, conn):
    await _account(conn, "target")
    await _account(conn, "bystander")
    with live_server(settings, workers=2) as base_url:
        await _fifty_wrong_then_right(base_url)


async def test_one_hundred_fifty_concurrent_failures_from_one_address(settings, conn):
    await _account(conn, "regular")
    sprayed = [{"username": f"nobody-{uuid.uuid4().hex[:8]}", "password": "spray"} for _ in range(150)]
    with live_server(settings, workers=2) as base_url:
        seen = await _burst(base_url, sprayed)
        assert seen == {INVALID: CLIENT_FAILURE_LIMIT, THROTTLED: 150 - CLIENT_FAILURE_LIMIT}
        # The address is spent: a known account with its right password waits too.
        assert (await _login(base_url, "regular")).json()["type"] == THROTTLED


async def test_the_throttle_holds_across_workers_while_redis_is_down(settings, conn):
    await _account(conn, "target")
    await _account(conn, "bystander")
    with live_server(settings, workers=2, extra_env={"REDIS_URL": DEAD_REDIS}) as base_url:
        await _fifty_wrong_then_right(base_url)
