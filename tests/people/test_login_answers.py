"""Honest login answers: an expired but genuine 随申码 says so; every forgery stays the same 401."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.city import DevCityIssuer
from tests.people.test_api import ENROLLED, INVALID, ROSTER, dev_issuer, import_csv

EXPIRED = "urn:chongjun:problem:expired-code"


async def _answer(client, code: str) -> tuple[int, str]:
    response = await client.post("/v1/auth/suishen", json={"code": code})
    return response.status_code, response.json()["type"]


async def test_a_genuine_expired_code_asks_for_a_fresh_one(client, app):
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    issuer = dev_issuer(app)
    stale = issuer.issue(ENROLLED, now=time.time() - 200)  # 60 s TTL + 30 s leeway long gone
    assert await _answer(client, stale) == (401, EXPIRED)
    # Only a signature that held may say "expired": the same stale code altered, or signed by a
    # key that is not the city's, is the uniform invalid-token.
    head, body, signature = stale[5:].split(".")
    forged = DevCityIssuer(app.state.settings, app.state.pii_vault, key=Ed25519PrivateKey.generate())
    for bad in (
        f"SSM1:{head}.{body}.{signature[::-1]}",
        f"SSM1:{head}.{body[:-3]}.{signature}",
        forged.issue(ENROLLED, now=time.time() - 200),
    ):
        assert await _answer(client, bad) == (401, INVALID)
    # Within its life (and its leeway) the same person's code still logs in.
    assert (await client.post("/v1/auth/suishen", json={"code": issuer.issue(ENROLLED, now=time.time() - 80)})).status_code == 200
