from __future__ import annotations

import asyncpg
import pytest

import identity
from foundation.connections import connect_postgres
from tests.exchange.receiver import Receiver


@pytest.fixture
async def pool(settings):
    pool = await connect_postgres(settings, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def keyring(settings, conn):
    ring = identity.KeyRing(identity.SecretStore.from_settings(settings))
    await identity.ensure_signing_keys(
        conn, ring.secrets, create=True, alg=identity.profile_algorithm(settings.crypto_profile)
    )
    await ring.load(conn)
    return ring


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()
