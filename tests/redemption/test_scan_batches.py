"""A worker's concurrent scans share round trips (issue 16): the Redis gate, the person read and
the ledger statement each in batches (foundation/batching.py), and the ordinary scan answered
below Litestar's router (api/fastscan.py). The answers are the ones each scan gets alone."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from redis.exceptions import RedisError

import identity
from benefits.redemption import gate
from foundation.batching import ScriptBatcher
from foundation.scripts import Script
from tests.api.test_metrics import _sample
from tests.factories.people import DISABLED_ID, STRANGER_ID, VETERAN_ID
from tests.factories.world import UNCAPPED, build_world, suishen
from tests.support import both_redis
from tests.tokens import admin, auth_headers


async def _scan(client, world, code, *, key=None, headers=None, **body):
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post(
        "/v1/scans", json={"code": code, "venue_id": world.venue_id, **body}, headers={**(headers or world.device_headers), **extra}
    )


@both_redis
async def test_concurrent_scans_share_batches_and_get_their_own_answers(app, client, conn, redis, settings):
    """Many scans at once through the app, accepted, replayed, not enrolled and a 崇军码 mixed:
    each gets the answer it would get alone."""
    world = await build_world(client, app, benefit={**UNCAPPED, "code": "BATCH"})
    used = suishen(app, VETERAN_ID)
    person = await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", identity.pii_vault(settings).index_of(DISABLED_ID))
    cj = (await identity.issue_code(redis, person, keyring=app.state.keyring)).code
    calls = [_scan(client, world, suishen(app, VETERAN_ID), key=f"k-{i}") for i in range(40)]
    calls += [_scan(client, world, used) for _ in range(5)]
    calls += [_scan(client, world, suishen(app, STRANGER_ID)) for _ in range(5)]
    calls.append(_scan(client, world, cj))
    replies = await asyncio.gather(*calls)
    assert {r.status_code for r in replies} == {200}, [r.text for r in replies if r.status_code != 200]
    reasons = [r.json()["reason"] for r in replies]
    assert reasons[:40] == ["accepted"] * 40
    assert sorted(reasons[40:45]) == ["accepted", "replayed", "replayed", "replayed", "replayed"]
    assert reasons[45:50] == ["not_enrolled"] * 5
    assert reasons[50] == "accepted"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 42
    batches = app.state.scan_batches
    # Every gate, read and ledger statement went through its batcher (how many shared a batch
    # depends on timing here: test_ledger_sql.py and the script test below pin the batching).
    # The stranger is read every time (only active cards are kept), the veteran at least once;
    # both the veteran and the 崇军码's holder are kept for their next scans.
    assert batches.ledger.calls >= 42 and batches.reads.by_index.calls >= 6 and batches.reads.by_id.calls == 1
    assert len(batches.reads.kept) == 2
    if batches.gate is not None:  # a single Redis server; a cluster's parts go to their nodes
        assert batches.gate.calls == 51
    assert app.state.scan_fast_path.answered == 51


async def test_a_repeated_idempotency_key_in_one_batch_is_answered_once(app, client, conn):
    world = await build_world(client, app)
    code = suishen(app, VETERAN_ID)
    replies = await asyncio.gather(*[_scan(client, world, code, key="same") for _ in range(30)])
    finished = [r for r in replies if r.status_code == 200]
    assert {r.status_code for r in replies} <= {200, 409} and finished
    assert all(r.content == finished[0].content for r in finished)
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1


async def test_what_the_fast_path_does_not_take_is_answered_by_the_app(app, client):
    """No token, a wrong principal, a bad body, a long key: the app's own answers, word for word."""
    world = await build_world(client, app)
    fast = app.state.scan_fast_path
    code = suishen(app, VETERAN_ID)
    no_token = await client.post("/v1/scans", json={"code": code, "venue_id": world.venue_id})
    assert no_token.status_code == 401 and no_token.headers["content-type"].startswith("application/problem+json")
    bad_token = await _scan(client, world, code, headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401 and bad_token.json()["type"].endswith("invalid-token")
    wrong_kind = await _scan(client, world, code, headers=auth_headers(app, admin("city")))
    assert wrong_kind.status_code == 403
    malformed = await client.post("/v1/scans", content=b"{not json", headers=world.device_headers)
    assert malformed.status_code == 400 and malformed.json()["type"].endswith("malformed-json")
    wrong_shape = await client.post("/v1/scans", json={"code": 5, "venue_id": world.venue_id}, headers=world.device_headers)
    assert wrong_shape.status_code == 400 and wrong_shape.json()["errors"][0]["key"] == "code"
    long_key = await _scan(client, world, code, key="k" * 256)
    assert long_key.status_code == 400
    assert fast.answered == 0
    counted = {"method": "POST", "path": "/v1/scans", "status_code": "200"}
    before = _sample((await client.get("/metrics")).text, "chongjun_requests_total", **counted)
    assert (await _scan(client, world, code)).json()["reason"] == "accepted"  # the same code, untouched
    assert fast.answered == 1
    assert _sample((await client.get("/metrics")).text, "chongjun_requests_total", **counted) - before == 1


async def test_an_error_while_deciding_is_the_apps_problem(app, client, monkeypatch):
    """An error raised in the decision is answered by the app's exception handlers: a domain
    error with its status and type, anything else a 500 that says nothing of it."""
    world = await build_world(client, app)
    other = await _scan(client, world, suishen(app, VETERAN_ID), venue_id=world.other_venue_id)  # not this device's venue
    assert other.status_code == 403 and other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["request_id"] == other.headers["x-request-id"]
    assert app.state.scan_fast_path.answered == 1

    from benefits import redemption

    async def broken(*args, **kwargs):
        raise RuntimeError("secret detail 310101199001011234")

    monkeypatch.setattr(redemption, "scan", broken)
    failed = await _scan(client, world, suishen(app, VETERAN_ID))
    assert failed.status_code == 500 and failed.json()["type"].endswith("internal-error")
    assert "310101" not in failed.text and "secret" not in failed.text


async def test_a_script_batch_loads_a_lost_script_and_survives_redis_down(redis):
    """Redis lost the script (restarted): every call of the batch still answers. Redis away:
    every caller gets a RedisError, the gate's signal for its fallback."""
    echo = Script("return {KEYS[1], ARGV[1]}", name="echo")
    batcher = ScriptBatcher(redis, echo)
    await redis.script_flush()
    answers = await asyncio.gather(*[batcher.run([f"k{i}"], [str(i)]) for i in range(20)])
    assert [[key.decode(), value.decode()] for key, value in answers] == [[f"k{i}", str(i)] for i in range(20)]
    assert batcher.batches < 20
    away = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        down = ScriptBatcher(away, echo)
        outcomes = await asyncio.gather(*[down.run(["k"], ["v"]) for _ in range(10)], return_exceptions=True)
        assert all(isinstance(o, RedisError) for o in outcomes), outcomes
        # The scan gate's own fallback: a Gate that lets the scan go on to PostgreSQL.
        passed = await gate.ask(away, caller="device:x", key=None, token="t", jti="j", per_minute=0,
                                batches=gate.ask_batches(away, in_flight=2))
        assert passed.key_fresh and not passed.seen_before
    finally:
        await away.aclose()


async def test_a_lifecycle_check_that_fails_is_answered_by_the_app(app, client):
    """A device check that raises (its database away, say) is not the fast path's to answer: the
    app runs it again and its handlers give problem+json, never a bare server error."""
    world = await build_world(client, app)

    async def broken(principal, state):
        raise OSError("the device store is away")

    app.state.principal_checks["device"] = broken
    answer = await _scan(client, world, suishen(app, VETERAN_ID))
    assert answer.status_code == 500 and answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("internal-error") and "away" not in answer.text
    assert app.state.scan_fast_path.answered == 0


class _CountingPool:
    """The app's pool, counting what takes a connection of it."""

    def __init__(self, pool) -> None:
        self.pool, self.acquired = pool, 0

    def acquire(self, *args, **options):
        self.acquired += 1
        return self.pool.acquire(*args, **options)

    def __getattr__(self, name):
        return getattr(self.pool, name)


async def test_a_scan_takes_a_connection_of_its_own_only_when_it_needs_one(app, client):
    """At a cached venue, a kept person's scan runs every statement in the worker's batches and
    takes no connection of the main pool. A replayed code is looked up on a connection of its
    own (foundation.connections.ConnectionOnDemand), taken then and given back."""
    world = await build_world(client, app, benefit={**UNCAPPED, "code": "ONDEMAND"})
    first = await _scan(client, world, suishen(app, VETERAN_ID))  # the venue, its offers and the person now cached
    assert first.json()["reason"] == "accepted", first.text
    counting = app.state.pool = _CountingPool(app.state.pool)
    try:
        code = suishen(app, VETERAN_ID)
        again = await _scan(client, world, code)
        assert again.json()["reason"] == "accepted", again.text
        assert counting.acquired == 0
        replay = await _scan(client, world, code)
        assert replay.json()["reason"] == "replayed", replay.text
        assert counting.acquired >= 1
    finally:
        app.state.pool = counting.pool
    assert app.state.scan_fast_path.answered == 3
