"""The device check the auth middleware runs: revocation within a second, Redis loss never un-revokes."""

from __future__ import annotations

import time

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

import merchants
from merchants import devicegate
from merchants.errors import DeviceRevoked
from tests.factories.world import city_admin, make_merchant, make_venue, staff
from tests.support import init_connection

KEY = b"k" * 32


@pytest.fixture
async def pool(settings):
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4, init=init_connection)
    devicegate.forget_local()
    yield pool
    devicegate.forget_local()
    await pool.close()


async def _device(conn, redis):
    merchant = await make_merchant(conn)
    venue = await make_venue(conn, merchant.id)
    provisioned = await merchants.provision_device(
        conn, redis, staff(merchant.id), merchants.DeviceCreate(venue_id=venue.id, label="gate"), hmac_key=KEY, api_base_url="http://x"
    )
    return merchant, venue, provisioned.device_id


async def test_active_then_revoked_at_once(conn, redis, pool):
    merchant, _, device_id = await _device(conn, redis)
    await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    # The marker a reader writes back carries its write time: "g:<generation>:<unix ms>".
    assert (await redis.get(devicegate.state_key(device_id))).startswith(b"g:1:")
    await merchants.revoke_device(conn, redis, staff(merchant.id), device_id)
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)


async def test_losing_redis_does_not_unrevoke(conn, redis, pool):
    merchant, _, device_id = await _device(conn, redis)
    await merchants.revoke_device(conn, redis, staff(merchant.id), device_id)
    await redis.flushdb()
    devicegate.forget_local()
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    # The answer from PostgreSQL went back into Redis.
    assert await redis.get(devicegate.state_key(device_id)) == b"r"


async def test_redis_down_falls_back_to_postgres(conn, redis, pool):
    merchant, venue, device_id = await _device(conn, redis)
    other = await merchants.provision_device(
        conn, redis, staff(merchant.id), merchants.DeviceCreate(venue_id=venue.id, label="gate 2"), hmac_key=KEY, api_base_url="http://x"
    )
    await merchants.revoke_device(conn, redis, staff(merchant.id), device_id)
    devicegate.forget_local()
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        started = time.perf_counter()
        with pytest.raises(DeviceRevoked):
            await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=dead)
        await merchants.check_device(other.device_id, secret_generation=1, pool=pool, redis=dead)
        assert time.perf_counter() - started < 1.0
    finally:
        devicegate.forget_local()  # and the memory of the Redis failure
        await dead.aclose()


async def test_rolled_secret_cuts_older_tokens(conn, redis, pool):
    merchant, _, device_id = await _device(conn, redis)
    await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    # No sleep: the roll is exact within the same second, since generations are counted, not timed.
    rolled = await merchants.roll_device_secret(conn, redis, city_admin(), device_id, hmac_key=KEY, api_base_url="http://x")
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    creds = await merchants.authenticate_device(conn, device_id, rolled.secret, hmac_key=KEY)
    assert (creds.device_id, creds.secret_generation) == (device_id, 2)
    await merchants.check_device(device_id, secret_generation=2, pool=pool, redis=redis)
    # Redis lost: PostgreSQL knows the roll too.
    await redis.flushdb()
    devicegate.forget_local()
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    await merchants.check_device(device_id, secret_generation=2, pool=pool, redis=redis)


async def test_token_without_a_generation_is_refused(conn, redis, pool):
    """Tokens issued before generations existed carry none: the scanner fetches a new one."""
    _, _, device_id = await _device(conn, redis)
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=None, pool=pool, redis=redis)


async def test_a_marker_of_another_release_is_not_trusted(conn, redis, pool):
    """The time-based marker of the previous release ("a:<epoch>") is read from PostgreSQL instead."""
    merchant, _, device_id = await _device(conn, redis)
    await merchants.revoke_device(conn, redis, staff(merchant.id), device_id)
    await redis.set(devicegate.state_key(device_id), "a:1", ex=10)
    devicegate.forget_local()
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)


@pytest.mark.parametrize("what", ["merchant", "venue"])
async def test_suspending_merchant_or_closing_venue_refuses_its_devices(conn, redis, pool, what):
    merchant, venue, device_id = await _device(conn, redis)
    await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)

    async def set_status(status):
        if what == "merchant":
            await merchants.update_merchant(conn, redis, city_admin(), merchant.id, merchants.MerchantUpdate(status=status))
        else:
            await merchants.update_venue(conn, redis, city_admin(), venue.id, msgspec.convert({"status": status}, merchants.VenueUpdate))

    await set_status("suspended" if what == "merchant" else "closed")
    with pytest.raises(DeviceRevoked):
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    await set_status("active")
    await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)


async def test_hot_path_costs_at_most_one_redis_get(conn, redis, pool):
    _, _, device_id = await _device(conn, redis)
    await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)  # warms Redis
    await redis.config_resetstat()
    for _ in range(20):
        devicegate.forget_local()
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    for _ in range(100):  # within the second: answered in process, no I/O at all
        await merchants.check_device(device_id, secret_generation=1, pool=pool, redis=redis)
    stats = await redis.info("commandstats")
    calls = {name: value["calls"] for name, value in stats.items()}
    calls.pop("cmdstat_info", None)
    calls.pop("cmdstat_config", None)  # the reset itself
    assert calls == {"cmdstat_get": 20}
