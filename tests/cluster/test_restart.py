"""Scans go on while one master of the Redis Cluster crashes and comes back empty.

`chongjun serve --workers 2` on a cluster of its own (tests/cluster/servers.py, 3 masters, node
timeout 1 s). Scans stream in from 32 connections, each new code sent once and an earlier one sent
again; meanwhile the master that REDIS_URL names is SIGKILLed, the cluster goes to
`cluster_state:fail`, and the master is started again on its port with its nodes.conf. With no
persistence it rejoins with its slots and none of its keys, `used` replay markers included.

What must hold: every answer is a 200 or a clean 503 problem+json (never a 500); no code is
accepted twice; after the rejoin every scan is answered again; a code accepted before the crash
whose replay marker lived on the crashed master is refused as `replayed` after it (PostgreSQL's
`consumed_codes` decides, not Redis); and the ledger holds exactly one row per accepted code.
The Idempotency-Key: a scan sent again with its key gets the first answer byte for byte, before,
during and after the outage, and 8 simultaneous sends of one key (one burst in each phase) get
one decision. The venue's capacity: cut to 20 more than what was accepted, 60 simultaneous fresh
codes after the rejoin get exactly 20 accepts (the capacity counter is PostgreSQL's).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections import Counter, defaultdict

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from foundation.scripts import hash_slot
from tests.cluster.servers import LocalCluster
from tests.factories.people import VETERAN_ID
from tests.factories.world import UNCAPPED, build_world, suishen
from tests.support import embedded_test_dir, live_server
from tests.tokens import admin, auth_headers


@pytest.fixture
def own_cluster():
    """A cluster of this test's own, so crashing a master disturbs no other test."""
    cluster = LocalCluster(embedded_test_dir() / f"redis-cluster-restart-{time.monotonic_ns()}").start()
    yield cluster
    cluster.stop()


def _jti(code: str) -> str:
    payload = code.removeprefix("SSM1:").split(".")[1]
    return "ssm:" + json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


def _node_of(cluster: LocalCluster, key: str) -> int:
    """The index of the master that holds `key`'s slot (the slots were split evenly in order)."""
    return hash_slot(key) * cluster.masters // 16384


async def test_scans_while_a_master_restarts(settings, conn, own_cluster):
    on_cluster = msgspec.structs.replace(settings, redis_url=own_cluster.url, redis_cluster=True)
    app = create_app(on_cluster)
    async with AsyncTestClient(app=app) as client:
        # No per-person cap and room for everyone: every fresh code is accepted exactly once.
        world = await build_world(client, app, capacity=100_000, benefit=UNCAPPED)
        codes = [suishen(app, VETERAN_ID) for _ in range(1200)]
        extra = iter([suishen(app, VETERAN_ID) for _ in range(3 + 60)])
    city = auth_headers(app, admin("city"))
    killed = 0  # the master REDIS_URL names: the client must find the others itself

    answers: list[tuple[str, str, int, dict]] = []  # (phase, code, status, body)
    phase = "before"
    fresh = iter(codes)
    sent: list[str] = []
    stop = asyncio.Event()
    keys = itertools.count()
    last_sent: dict[str, float] = {}  # code -> when a request with it was last started
    keyed: list[tuple[str, int, bytes, int, bytes]] = []  # (phase, first status, first body, again status, again body)
    bursts: list[tuple[str, list[int], set[bytes]]] = []  # (phase, statuses, distinct 200 bodies)

    with live_server(on_cluster, workers=2) as base_url:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

            async def post(code: str, key: str) -> httpx.Response:
                last_sent[code] = time.monotonic()
                reply = await http.post(
                    "/v1/scans", json={"code": code, "venue_id": world.venue_id},
                    headers={**world.device_headers, "Idempotency-Key": key},
                )
                if reply.status_code != 200:
                    assert reply.headers["content-type"].startswith("application/problem+json"), reply.text
                return reply

            async def send(code: str, *, again: bool = False) -> None:
                at, key = phase, f"k-{next(keys)}"
                reply = await post(code, key)
                answers.append((at, code, reply.status_code, reply.json()))
                if again:  # the same scan, the same key: the first answer, byte for byte
                    repeat = await post(code, key)
                    keyed.append((at, reply.status_code, reply.content, repeat.status_code, repeat.content))

            async def burst(code: str) -> None:
                at, key = phase, f"burst-{next(keys)}"
                replies = await asyncio.gather(*(post(code, key) for _ in range(8)))
                bursts.append((at, [r.status_code for r in replies], {r.content for r in replies if r.status_code == 200}))

            async def scanner(n: int) -> None:
                for step in itertools.count():
                    if stop.is_set():
                        return
                    code = next(fresh, None)
                    if code is None:
                        return
                    sent.append(code)
                    await send(code, again=step % 3 == 2)
                    if step % 2 == 1:
                        await send(sent[(step * 7919 + n) % len(sent)])  # an earlier code again

            scanners = [asyncio.create_task(scanner(n)) for n in range(32)]
            await asyncio.sleep(1.0)
            await burst(next(extra))
            await asyncio.sleep(0.5)

            phase = "outage"
            own_cluster.kill(killed)
            down_at = time.monotonic()
            saw_fail = False
            while not saw_fail and time.monotonic() - down_at < 10:
                await asyncio.sleep(0.1)
                saw_fail = own_cluster.state(1)["cluster_state"] == "fail"
            failed_in = time.monotonic() - down_at
            await burst(next(extra))  # while the cluster says it is failing
            await asyncio.sleep(1.5)
            own_cluster.revive(killed)
            revived_at = time.monotonic()
            phase = "rejoining"
            rejoined_in = own_cluster.wait_until_ok()
            await asyncio.sleep(1.0)  # the workers' clients re-read the slot map on their next errors

            phase = "after"
            await burst(next(extra))
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.gather(*scanners)

            # Codes accepted before the crash whose replay markers lived on the crashed master:
            # the markers are gone (no persistence), so only PostgreSQL can refuse them now.
            # (A code sent again since the revive has its marker set again: not those.)
            accepted_before = [
                c for at, c, _, body in answers
                if at == "before" and body.get("decision") == "accepted" and last_sent[c] < revived_at
            ]
            lost = [c for c in accepted_before if _node_of(own_cluster, f"cj:used:{{{_jti(c)}}}") == killed]
            node = own_cluster.node(killed)
            try:
                assert lost and not any(node.exists(f"cj:used:{{{_jti(c)}}}") for c in lost[:50])
            finally:
                node.close()
            phase = "replay"
            for code in lost[:50]:
                await send(code)

            # The capacity, exact under concurrency after the crash: 20 places left, 60 at once.
            used = await conn.fetchval("SELECT count(*) FROM redemptions")
            cut = await http.patch(f"/v1/admin/venues/{world.venue_id}", json={"daily_capacity": used + 20}, headers=city)
            assert cut.status_code == 200, cut.text
            crowd = [next(extra) for _ in range(60)]
            at_capacity = await asyncio.gather(*(post(code, f"cap-{n}") for n, code in enumerate(crowd)))

    statuses = Counter((at, status) for at, _, status, _ in answers)
    assert saw_fail, "the cluster never noticed the crash: the outage was not exercised"
    assert {status for _, _, status, _ in answers} <= {200, 503}, statuses
    for at, _, status, body in answers:
        if status == 503:
            assert body["status"] == 503 and body["type"].startswith("urn:chongjun:problem:"), body
    assert statuses[("outage", 200)] + statuses[("outage", 503)] > 0, statuses
    assert statuses[("after", 200)] > 0 and statuses[("after", 503)] == 0, statuses
    assert all(status == 200 for at, _, status, _ in answers if at == "replay")

    by_code: dict[str, list[str]] = defaultdict(list)
    for _, code, status, body in answers:
        if status == 200:
            by_code[code].append(body["reason"])
    accepted = [code for code, reasons in by_code.items() if "accepted" in reasons]
    assert all(reasons.count("accepted") == 1 for reasons in by_code.values())
    assert all(set(reasons) <= {"accepted", "replayed"} for reasons in by_code.values())
    assert [r for at, c, s, r in answers if at == "replay"] and all(
        r["reason"] == "replayed" for at, c, s, r in answers if at == "replay"
    )

    # the Idempotency-Key: every repeat got the first answer; every burst one decision
    assert {at for at, *_ in keyed} >= {"before", "outage", "after"}, Counter(at for at, *_ in keyed)
    for at, first, first_body, again, again_body in keyed:
        if first == 200:
            assert again == 200 and again_body == first_body, (at, first_body, again_body)
    assert [at for at, _, _ in bursts] == ["before", "outage", "after"]
    burst_accepts = 0
    for at, codes_, bodies in bursts:
        assert set(codes_) <= {200, 409} and len(bodies) == 1, (at, codes_, bodies)
        burst_accepts += json.loads(next(iter(bodies)))["decision"] == "accepted"
    assert burst_accepts == 3

    # the capacity: exactly the 20 places left were taken
    crowd_reasons = Counter(r.json()["reason"] for r in at_capacity)
    assert {r.status_code for r in at_capacity} == {200}
    assert crowd_reasons == {"accepted": 20, "venue_capacity_reached": 40}, crowd_reasons

    total = len(accepted) + burst_accepts + 20
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == total
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes") == total
    assert await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1::uuid", world.venue_id) == total
    print(
        f"\nscans: {dict(statuses)}; accepted {len(accepted)} codes; cluster rejoined in {rejoined_in:.2f} s;"
        f" {len(lost)} accepted codes had their replay marker on the crashed master;"
        f" cluster failing {failed_in:.2f} s after the kill; {len(keyed)} keyed repeats; bursts {[c for _, c, _ in bursts]}"
    )
