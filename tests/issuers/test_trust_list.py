"""长三角 trust list: two simulated issuers besides Shanghai's (a 苏服码-style JWKS issuer and an
online 验码 issuer), one suspended; login, scan, the signed list, admin management."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.errors import PROBLEM_TYPE_PREFIX
from identity.credentials import jwks_lookup
from identity.issuers import ISSUER_CODE_TYPE, TrustListRefused, verify_trust_list
from identity.keys import _public_jwk
from tests.factories.world import DAILY, build_world
from tests.support import both_profiles
from tests.tokens import admin, auth_headers


def id_number(prefix17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return prefix17 + "10X98765432"[sum(int(c) * w for c, w in zip(prefix17, weights)) % 11]


JIANGSU = id_number("32010219700115102")
ZHEJIANG = id_number("33010219700115103")
ANHUI = id_number("34010219700115104")
ROSTER = "id_number,name,categories,disability_grade,disability_cause,card_kind,card_status,card_province,district,birth_date\n" + "".join(
    f"{n},{name},VETERAN,,,VETERAN_CARD,ACTIVE,{province},310115,1970-01-15\n"
    for n, name, province in ((JIANGSU, "江苏人", "320000"), (ZHEJIANG, "浙江人", "330000"), (ANHUI, "安徽人", "340000"))
)
PROVINCE_BENEFIT = {**DAILY, "code": "L99", "rule": {"op": "all", "all": [{"op": "has_any_category", "categories": ["VETERAN"]},
                                                             {"op": "card_province", "ne": "310000"}]}}


class _AnhuiPlatform(BaseHTTPRequestHandler):
    """An online 验码 interface of a third issuer (the 随申码 platform's reply contract)."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        code = json.loads(self.rfile.read(int(self.headers["content-length"])))["code"]
        if code.startswith("AHM1:OK-"):
            body = {"result": "valid", "subject": "ah-7", "id_number": ANHUI, "name": "安徽人", "code_id": code[5:],
                    "expires_at": int(time.time()) + 60}
        else:
            body = {"result": "invalid"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def anhui_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AnhuiPlatform)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/verify"
    server.shutdown()
    server.server_close()


def _issuer_code(key, kid, issuer, prefix, id_no, *, ttl=60):
    now = int(time.time())
    token = jwt.encode({"iss": issuer, "aud": "cjmf", "sub": "s-" + id_no[-4:], "idn": id_no, "iat": now, "exp": now + ttl,
                        "jti": os.urandom(12).hex()}, key, algorithm="EdDSA", headers={"kid": kid, "typ": ISSUER_CODE_TYPE})
    return prefix + token


@both_profiles  # the trust list is SM2-signed under gm: verify_trust_list once knew only PyJWT's own algorithms
async def test_issuers_beyond_suishen_log_in_and_redeem_and_a_suspended_one_is_refused(client, app, conn, anhui_url):
    world = await build_world(client, app, benefit=PROVINCE_BENEFIT)
    city = auth_headers(app, admin("city"))
    assert (await client.post("/v1/admin/people/import", content=ROSTER.encode(),
                              headers={"content-type": "text/csv", **city})).status_code == 200
    js_key, zj_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    js_jwk = {**_public_jwk(js_key.public_key()), "kid": "js-1", "alg": "EdDSA"}
    zj_jwk = {**_public_jwk(zj_key.public_key()), "kid": "zj-1", "alg": "EdDSA"}
    for body in (
        {"code": "JS-SUFU", "name": "苏服码", "province": "320000", "kind": "jwks", "code_prefix": "SFM1:", "jwks": {"keys": [js_jwk]}},
        {"code": "ZJ-ZHELI", "name": "浙里办码", "province": "330000", "kind": "jwks", "code_prefix": "ZLB1:", "jwks": {"keys": [zj_jwk]}},
        {"code": "AH-WAN", "name": "皖事通码", "province": "340000", "kind": "online", "code_prefix": "AHM1:", "verify_url": anhui_url},
    ):
        created = await client.post("/v1/admin/issuers", json=body, headers=city)
        assert created.status_code == 201, created.text
    assert (await client.post("/v1/admin/issuers", json={**body, "code": "AH-OTHER"}, headers=city)).status_code == 409  # prefix taken
    listed = await client.get("/v1/trust-list")
    before = verify_trust_list(listed.text, key_for=jwks_lookup((await client.get("/.well-known/jwks.json")).json()), now=time.time())
    suspended = await client.post("/v1/admin/issuers/ZJ-ZHELI/status", json={"status": "suspended"}, headers=city)
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"

    # A Jiangsu person logs in with their own issuer's code and redeems at a Shanghai venue whose
    # benefit targets cards from outside Shanghai.
    login = await client.post("/v1/auth/suishen", json={"code": _issuer_code(js_key, "js-1", "JS-SUFU", "SFM1:", JIANGSU)})
    assert login.status_code == 200, login.text
    scan = await client.post("/v1/scans", json={"code": _issuer_code(js_key, "js-1", "JS-SUFU", "SFM1:", JIANGSU),
                                                "venue_id": world.venue_id},
                             headers={**world.device_headers, "Idempotency-Key": "js-scan-1"})
    assert scan.status_code == 200 and scan.json()["decision"] == "accepted", scan.text
    # The online issuer's person too.
    assert (await client.post("/v1/auth/suishen", json={"code": "AHM1:OK-anhui-0001"})).status_code == 200
    anhui_scan = await client.post("/v1/scans", json={"code": "AHM1:OK-anhui-0002", "venue_id": world.venue_id},
                                   headers={**world.device_headers, "Idempotency-Key": "ah-scan-1"})
    assert anhui_scan.json()["decision"] == "accepted", anhui_scan.text

    # The suspended issuer's genuine codes: refused at login and at the gate, like a forgery.
    zj = await client.post("/v1/auth/suishen", json={"code": _issuer_code(zj_key, "zj-1", "ZJ-ZHELI", "ZLB1:", ZHEJIANG)})
    assert zj.status_code == 401 and zj.json()["type"] == PROBLEM_TYPE_PREFIX + "invalid-token"
    zj_scan = await client.post("/v1/scans", json={"code": _issuer_code(zj_key, "zj-1", "ZJ-ZHELI", "ZLB1:", ZHEJIANG),
                                                   "venue_id": world.venue_id},
                                headers={**world.device_headers, "Idempotency-Key": "zj-scan-1"})
    assert zj_scan.json()["decision"] == "rejected" and zj_scan.json()["reason"] == "invalid_code", zj_scan.text
    # A code signed by another key under the Jiangsu prefix is a forgery.
    forged = await client.post("/v1/auth/suishen", json={"code": _issuer_code(zj_key, "js-1", "JS-SUFU", "SFM1:", JIANGSU)})
    assert forged.status_code == 401

    # The signed list: every issuer with its status, a higher version, and no rolling back.
    jwks = (await client.get("/.well-known/jwks.json")).json()
    after = verify_trust_list((await client.get("/v1/trust-list")).text, key_for=jwks_lookup(jwks), now=time.time(),
                              last_version=before["version"])
    assert after["version"] > before["version"]
    assert {i["code"]: i["status"] for i in after["issuers"]} == {"SH-SUISHEN": "active", "JS-SUFU": "active",
                                                                  "ZJ-ZHELI": "suspended", "AH-WAN": "active"}
    with pytest.raises(TrustListRefused) as refused:
        verify_trust_list(listed.text, key_for=jwks_lookup(jwks), now=time.time(), last_version=after["version"])
    assert refused.value.reason == "rolled-back"
    with pytest.raises(TrustListRefused) as refused:
        verify_trust_list(listed.text, key_for=jwks_lookup(jwks), now=time.time() + 2 * 86400)
    assert refused.value.reason == "expired"

    # Retired is final; district admins read but do not manage; every change is audited.
    assert (await client.post("/v1/admin/issuers/ZJ-ZHELI/status", json={"status": "retired"}, headers=city)).status_code == 200
    again = await client.post("/v1/admin/issuers/ZJ-ZHELI/status", json={"status": "active"}, headers=city)
    assert again.status_code == 409 and again.json()["type"] == PROBLEM_TYPE_PREFIX + "issuer-status-refused"
    district = auth_headers(app, admin("district"))
    assert (await client.get("/v1/admin/issuers", headers=district)).status_code == 200
    assert (await client.post("/v1/admin/issuers/JS-SUFU/status", json={"status": "suspended"}, headers=district)).status_code == 403
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log WHERE object_kind = 'issuer' ORDER BY id")]
    assert actions == ["issuer.create"] * 3 + ["issuer.status"] * 2
    assert JIANGSU not in str(await conn.fetch("SELECT detail FROM audit_log"))


async def test_bad_issuer_definitions_are_422(client, app):
    city = auth_headers(app, admin("city"))
    for body in (
        {"code": "JS-SUFU", "name": "x", "province": "320000", "kind": "jwks", "code_prefix": "SFM1:", "jwks": {"keys": []}},
        {"code": "JS-SUFU", "name": "x", "province": "320000", "kind": "jwks", "code_prefix": "SFM1:", "verify_url": "https://a/v"},
        {"code": "JS-SUFU", "name": "x", "province": "320000", "kind": "online", "code_prefix": "SFM1:"},
        {"code": "JS-SUFU", "name": "x", "province": "320000", "kind": "online", "code_prefix": "SSM1:", "verify_url": "https://a/v"},
    ):
        answer = await client.post("/v1/admin/issuers", json=body, headers=city)
        assert answer.status_code == 422 and answer.json()["type"] == PROBLEM_TYPE_PREFIX + "invalid-issuer", answer.text
    assert (await client.post("/v1/admin/issuers/NO-SUCH/status", json={"status": "suspended"}, headers=city)).status_code == 404
