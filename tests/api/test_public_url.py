"""What outlives a request (a credential's issuer, a status list's and trust list's URL, a device's
setup QR) names CHONGJUN_PUBLIC_URL when it is set, never the `Host` header a caller chose; in dev,
without it, the address the request used."""

from __future__ import annotations

import uuid

import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.testing import AsyncTestClient

from api.app import create_app
from foundation.settings import load_settings
from identity.keys import _public_jwk
from tests import tokens
from tests.credentials.test_credential_api import _enrolled
from tests.merchants.test_api import city, create_merchant, create_venue

PUBLIC = "https://chongjun.example.gov.cn"
FORGED = {"Host": "evil.example"}


async def _what_outlives_the_request(client, app, conn, redis) -> dict[str, str]:
    """The addresses chongjun put into a credential, the status list, the trust list and a setup QR,
    each made by a request carrying a forged Host header."""
    person_id = await _enrolled(client, app, conn)
    holder = {"holder_jwk": _public_jwk(Ed25519PrivateKey.generate().public_key())}
    issued = await client.post("/v1/me/credential", json=holder, headers={**tokens.auth_headers(app, tokens.veteran(person_id)), **FORGED})
    assert issued.status_code == 201, issued.text
    status_list = await client.get("/v1/status-lists/1", headers=FORGED)
    trust_list = await client.get("/v1/trust-list", headers=FORGED)
    admin = city(app)
    venue = await create_venue(client, admin, (await create_merchant(client, admin))["id"])
    device = await client.post("/v1/admin/devices", json={"venue_id": venue["id"], "label": "东门"}, headers={**admin, **FORGED})
    assert device.status_code == 201, device.text
    setup = msgspec.json.decode(await redis.get(f"cj:device:{{{device.json()['device_id']}}}:setup"))
    token = await client.post("/v1/devices/token", json={"device_id": device.json()["device_id"], "secret": device.json()["secret"]})
    assert token.status_code == 200, token.text
    bundle = await client.get("/v1/scans/offline-bundle", headers={"Authorization": "Bearer " + token.json()["access_token"], **FORGED})
    assert bundle.status_code == 200, bundle.text
    options = {"verify_signature": False}
    offline = jwt.decode(bundle.text, options=options)
    return {
        "offline bundle issuer": offline["iss"],
        "offline bundle status list": jwt.decode(offline["status_list"], options=options)["sub"],
        "credential issuer": jwt.decode(issued.json()["credential"].split("~")[0], options=options)["iss"],
        "credential status list": issued.json()["status_list_uri"],
        "status list": jwt.decode(status_list.text, options=options)["sub"],
        "trust list issuer": jwt.decode(trust_list.text, options=options)["iss"],
        "device setup api": setup["api"],
    }


async def test_a_configured_public_url_is_named_whatever_host_the_caller_sent(settings, conn, redis):
    app = create_app(msgspec.structs.replace(settings, public_url=PUBLIC + "/"))
    async with AsyncTestClient(app=app) as client:
        seen = await _what_outlives_the_request(client, app, conn, redis)
    assert seen == {
        "credential issuer": PUBLIC, "credential status list": PUBLIC + "/v1/status-lists/1",
        "status list": PUBLIC + "/v1/status-lists/1", "trust list issuer": PUBLIC, "device setup api": PUBLIC,
        "offline bundle issuer": PUBLIC, "offline bundle status list": PUBLIC + "/v1/status-lists/1",
    }


async def test_without_one_dev_names_the_address_the_request_used(app, client, conn, redis):
    seen = await _what_outlives_the_request(client, app, conn, redis)
    assert set(seen.values()) == {"http://evil.example", "http://evil.example/v1/status-lists/1"}, seen


def test_the_setting_is_read_from_the_environment():
    assert load_settings({"CHONGJUN_PUBLIC_URL": PUBLIC}).public_url == PUBLIC
    assert load_settings({}).public_url is None
