from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import identity
from identity import KeyRing
from tests.tokens import keyring_for


@pytest.fixture
async def keyring(settings, conn) -> AsyncIterator[KeyRing]:
    """The test database's key ring, installed as this process's ring (as the app does)."""
    ring = await keyring_for(settings)
    identity.install_keyring(ring)
    yield ring
    identity.uninstall_keyring(ring)
