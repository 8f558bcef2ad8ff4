from __future__ import annotations

import pytest

from identity import KeyRing
from tests.tokens import keyring_for


@pytest.fixture
async def keyring(settings, conn) -> KeyRing:
    """The test database's key ring (what the app loads into `app.state.keyring`)."""
    return await keyring_for(settings)


@pytest.fixture(scope="module")
def memory_keyring(tmp_path_factory) -> KeyRing:
    """A ring held only in memory (active EdDSA + next EdDSA + retired ES256): for pure crypto
    tests that need no database, so the many threat cases stay fast."""
    from identity import SecretStore
    from identity.keys import generate_key

    ring = KeyRing(SecretStore(tmp_path_factory.mktemp("secrets"), production=False, environ={}))
    ring.use([generate_key("EdDSA", "active"), generate_key("EdDSA", "next"), generate_key("ES256", "retired")])
    return ring
