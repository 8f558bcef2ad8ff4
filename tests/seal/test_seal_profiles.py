"""The e-seal under the crypto profiles: gm seals with SM2, and a switch either way keeps every
statement sealed before it verifying with the published JWKS (the old key is published from
PostgreSQL, as after a rotation)."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest
from litestar.testing import AsyncTestClient

import merchants
from api import create_app
from benefits.redemption.seal import explain_sealed
from foundation.sm2 import SM2PublicKey, raw_to_der
from identity import sm2_from_jwk
from tests import tokens
from tests.factories.world import make_merchant, make_venue
from tests.merchants.test_reports import T1, redeem


@pytest.fixture
def settings(settings, tmp_path):
    return msgspec.structs.replace(settings, secrets_dir=tmp_path / "secrets")


@pytest.mark.parametrize(("first", "then"), [("intl", "gm"), ("gm", "intl")])
async def test_a_profile_switch_keeps_earlier_seals_verifying(conn, settings, first, then):
    mine = await make_merchant(conn)
    venue = await make_venue(conn, mine.id)
    await redeem(conn, venue, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    expected = {"intl": "EdDSA", "gm": "SM2"}

    before_settings = msgspec.structs.replace(settings, crypto_profile=first)
    before_app = create_app(before_settings)
    async with AsyncTestClient(app=before_app) as client:
        headers = tokens.auth_headers(before_app, tokens.staff(mine.id))
        october = (await client.get("/v1/merchant/statements/2026-10", headers=headers)).json()
    assert october["seal"]["alg"] == expected[first] == merchants.seal_key(before_settings).alg

    after_settings = msgspec.structs.replace(settings, crypto_profile=then)
    after_app = create_app(after_settings)
    async with AsyncTestClient(app=after_app) as client:
        headers = tokens.auth_headers(after_app, tokens.staff(mine.id))
        await redeem(conn, venue, T1, "T1", day=date(2026, 11, 5), value_fen=500)
        november = (await client.get("/v1/merchant/statements/2026-11", headers=headers)).json()
        jwks = (await client.get("/.well-known/jwks.json")).json()
    assert november["seal"]["alg"] == expected[then]
    assert explain_sealed(october, jwks).ok and explain_sealed(november, jwks).ok
    sm2 = october if first == "gm" else november
    # The SM2 seal checked with nothing but foundation.sm2 and the published point.
    [jwk] = [k for k in jwks["keys"] if k["kid"] == sm2["seal"]["kid"]]
    assert jwk["crv"] == "SM2" and isinstance(sm2_from_jwk(jwk), SM2PublicKey)
    from benefits.redemption.seal import canonical_bytes
    from foundation.encoding import b64url as _b64url, unb64url as _unb64url

    protected, _, signature = sm2["seal"]["jws"].split(".")
    signing_input = f"{protected}.{_b64url(canonical_bytes(sm2['statement']))}".encode()
    assert sm2_from_jwk(jwk).verify(raw_to_der(_unb64url(signature)), signing_input)
    sm2["statement"]["net_value_fen"] += 1
    assert explain_sealed(sm2, jwks).reason == "signature-mismatch"
