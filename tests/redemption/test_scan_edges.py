"""Edge cases of the scan hot path found in review: each failed before its fix (9fb9741)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import msgspec
import redis.asyncio as aioredis

from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_world, suishen
from tests.tokens import admin, auth_headers


async def _scan(client, world, code, *, key=None, **body):
    request = {"code": code, "venue_id": world.venue_id, **body}
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post("/v1/scans", json=request, headers={**world.device_headers, **extra})


async def test_lowered_venue_capacity_is_enforced_at_once(app, client, conn):
    """The venue is cached 5 s in process; its capacity must still be the one PostgreSQL has now
    (the ledger statement reads it, migration 0043)."""
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    first = await _scan(client, world, suishen(app, VETERAN_ID))
    assert first.json()["decision"] == "accepted"  # caches the venue (capacity 500) in this process
    lowered = await client.patch(f"/v1/admin/venues/{world.venue_id}", json={"daily_capacity": 1}, headers=city)
    assert lowered.status_code == 200, lowered.text
    second = await _scan(client, world, suishen(app, DISABLED_ID))
    used = await conn.fetchval("SELECT sum(used) FROM capacity_stripes WHERE venue_id = $1::uuid", world.venue_id)
    capacity = await conn.fetchval("SELECT daily_capacity FROM venues WHERE id = $1::uuid", world.venue_id)
    assert used <= capacity, f"venue capacity {capacity} overrun: used {used}"
    assert second.json()["reason"] == "venue_capacity_reached"


class _LoseOneReply:
    """A TCP proxy to the test Redis that lets the first command touching an Idempotency-Key
    marker run on the server but drops its reply (a reset connection / timeout after execution)."""

    def __init__(self, upstream: dict) -> None:
        self.upstream = upstream
        self.armed = True

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _open(self):
        if self.upstream.get("path"):
            return await asyncio.open_unix_connection(self.upstream["path"])
        return await asyncio.open_connection(self.upstream.get("host", "127.0.0.1"), self.upstream.get("port", 6379))

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await self._open()
        sent = bytearray()

        async def upward() -> None:
            while data := await reader.read(65536):
                sent.extend(data)
                up_writer.write(data)
                await up_writer.drain()

        async def downward() -> None:
            while data := await up_reader.read(65536):
                if self.armed and b"cj:idem" in sent:
                    self.armed = False
                    writer.transport.abort()
                    up_writer.close()
                    return
                writer.write(data)
                await writer.drain()

        await asyncio.gather(upward(), downward(), return_exceptions=True)
        writer.close()
        up_writer.close()

    async def stop(self) -> None:
        self.server.close()


async def test_lost_redis_reply_does_not_turn_a_lone_scan_into_409(app, client, conn, settings):
    """redis-py re-sends a pipeline after a lost reply; the `SET NX` that already ran then answers
    nil. The marker holds the request's own token, so the request is not taken for another in
    flight (it was: 409, nothing decided, and every retry 409 for 30 s)."""
    from benefits import redemption
    from benefits.redemption import ScanRequest
    from identity import Principal

    world = await build_world(client, app)
    probe = aioredis.Redis.from_url(settings.redis_url)
    upstream = dict(probe.connection_pool.connection_kwargs)
    await probe.aclose()
    proxy = _LoseOneReply(upstream)
    port = await proxy.start()
    flaky = aioredis.Redis(host="127.0.0.1", port=port, db=upstream.get("db", 0), socket_timeout=2)
    principal = Principal(
        kind="device",
        subject=UUID(world.device_id),
        merchant_id=UUID(world.merchant_id),
        venue_id=UUID(world.venue_id),
        secret_generation=1,
    )
    key = str(uuid4())
    code = suishen(app, VETERAN_ID)
    try:
        answer = await redemption.scan(
            conn, flaky, principal, ScanRequest(code=code, venue_id=UUID(world.venue_id)),
            idempotency_key=key, scan_rate=0, keyring=app.state.keyring, providers=app.state.city,
        )
        assert msgspec.json.decode(answer)["decision"] == "accepted"
    finally:
        await flaky.aclose()
        await proxy.stop()


async def test_retry_of_an_answered_key_gets_its_answer_not_429(settings, conn, redis):
    """Once the 30 s marker is gone, a retry of an answered key is counted by the rate limit; over
    it, the stored answer is still what it gets."""
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    app = create_app(msgspec.structs.replace(settings, device_scan_rate=2))
    async with AsyncTestClient(app=app) as client:
        world = await build_world(client, app)
        first = await _scan(client, world, "CJ1:garbage", key="k-1")
        assert first.status_code == 200
        await _scan(client, world, "CJ1:garbage", key="k-2")
        assert (await _scan(client, world, "CJ1:garbage", key="k-3")).status_code == 429
        async for marker in redis.scan_iter("cj:idem:*"):  # what 30 s would do
            await redis.delete(marker)
        retry = await _scan(client, world, "CJ1:garbage", key="k-1")
        assert retry.status_code == 200 and retry.content == first.content, retry.text


async def test_retry_of_an_answered_key_is_not_a_503_while_the_city_platform_is_down(settings):
    """The code is verified (for a platform 随申码: an HTTP call) before the key gate; once the
    platform fails, a retry of an already-answered key still gets its answer, not a 503."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from litestar.testing import AsyncTestClient

    from api.app import create_app

    state = {"up": True}

    class Platform(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            code = json.loads(self.rfile.read(int(self.headers["content-length"])))["code"]
            if state["up"]:
                body = json.dumps({"result": "valid", "subject": "city-1", "id_number": VETERAN_ID,
                                   "code_id": "c-" + code, "expires_at": int(time.time()) + 600}).encode()
                status = 200
            else:
                body, status = b"{}", 500
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/verify"
        app = create_app(msgspec.structs.replace(settings, city_platform_url=url))
        async with AsyncTestClient(app=app) as client:
            world = await build_world(client, app)
            first = await _scan(client, world, "PLATFORM-CODE-1", key="k-1")
            assert first.status_code == 200 and first.json()["decision"] == "accepted", first.text
            state["up"] = False
            retry = await _scan(client, world, "PLATFORM-CODE-1", key="k-1")
            assert retry.status_code == 200 and retry.content == first.content, retry.text
    finally:
        server.shutdown()
        server.server_close()


async def test_a_raised_capacity_counts_at_once_and_a_closed_venue_refuses(app, client, conn):
    world = await build_world(client, app, capacity=1)
    city = auth_headers(app, admin("city"))
    assert (await _scan(client, world, suishen(app, VETERAN_ID))).json()["decision"] == "accepted"
    raised = await client.patch(f"/v1/admin/venues/{world.venue_id}", json={"daily_capacity": 10}, headers=city)
    assert raised.status_code == 200, raised.text
    assert (await _scan(client, world, suishen(app, DISABLED_ID))).json()["decision"] == "accepted"
    closed = await client.patch(f"/v1/admin/venues/{world.venue_id}", json={"status": "closed"}, headers=city)
    assert closed.status_code == 200, closed.text
    refused = await _scan(client, world, suishen(app, DISABLED_ID))
    assert refused.status_code in (401, 403), refused.text  # the device is refused with its venue
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 2
