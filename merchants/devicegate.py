"""Is this device still allowed to act? The check the auth middleware runs for device tokens.

A device JWT lives a few minutes, so revoking a device (or suspending its merchant, closing its
venue, rolling its secret) must also stop tokens already issued. The mechanism is
`identity.gate` (one Redis marker per device, PostgreSQL the truth, an in-process answer for at
most a second); this module is its device half, and `DEVICES` this process's gate:

    cj:device:{<id>}:state = "r"            refused (revoked, venue closed, merchant not active)
                           = "g:<n>"        active; only tokens of secret generation <n> pass

A device token carries the generation of the secret it was issued under (`gen`), and each roll
bumps the device's generation: a token of the old secret fails by number, whatever the clocks say.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis

from identity import gate
from identity.gate import REFUSED, StateGate, active
from merchants import db
from merchants.errors import DeviceRevoked

__all__ = ("DEVICES", "check_device", "forget_local", "publish_refused", "publish_state", "state_key")


async def _load(conn: asyncpg.Connection, device_id: UUID) -> str:
    row = await db.device_state(conn, device_id)
    if row is None or not row["usable"]:
        return REFUSED
    return active(row["secret_generation"])


DEVICES = StateGate("device", _load, unavailable="The device's status cannot be checked right now")
"""This process's device gate (a cache of PostgreSQL's and Redis's answer; see identity.gate)."""


def state_key(device_id: UUID) -> str:
    return gate.state_key(DEVICES.kind, device_id)


def forget_local(device_ids: Iterable[UUID] | None = None) -> None:
    """Drop this process's cached answers (all of them with no argument)."""
    DEVICES.forget(device_ids)


async def check_device(
    device_id: UUID,
    *,
    secret_generation: int | None,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
) -> None:
    """Raise DeviceRevoked unless the device may act now with a token of `secret_generation`.

    A token without a generation (issued before generations existed) is refused like an old one.
    """
    state = await DEVICES.state(device_id, pool=pool, redis=redis)
    if state == REFUSED:
        raise DeviceRevoked("This device has been revoked or its venue is not active")
    if secret_generation is None or state != active(secret_generation):
        raise DeviceRevoked("This token was issued for an earlier secret of this device")


async def publish_refused(redis: aioredis.Redis, device_ids: Iterable[UUID]) -> None:
    """Tell every worker now: these devices are refused (written over any active marker)."""
    await DEVICES.publish_refused(redis, device_ids)


async def publish_state(
    redis: aioredis.Redis, device_ids: Iterable[UUID], *, secret_generation: int | None = None
) -> None:
    """After a change that may re-allow devices (or roll a secret): set or drop their markers."""
    await DEVICES.publish_state(redis, device_ids, generation=secret_generation)
