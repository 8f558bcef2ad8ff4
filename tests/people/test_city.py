"""The city identity adapter: the dev 随申码 simulator and the platform client against a real HTTP server."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from identity.city import CityPlatformUnavailable, CityProviders, DevCityIssuer, DevIssuerRefused, PlatformCityProvider
from identity.city.dev import PREFIX
from identity.errors import ExpiredCode, InvalidCode
from identity.pii import InvalidIdNumber, PiiVault

ID = "310101199001011234"
NOW = 1_800_000_000


@pytest.fixture
def vault() -> PiiVault:
    return PiiVault(index_key=os.urandom(32), seal_keys={1: os.urandom(32)})


@pytest.fixture
def issuer(settings, vault) -> DevCityIssuer:
    return DevCityIssuer(settings, vault)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(code: str) -> list[str]:
    return code[len(PREFIX) :].split(".")


async def test_dev_code_round_trip(issuer, vault):
    code = issuer.issue(ID, name_masked="张*", now=NOW)
    assert code.startswith("SSM1:") and len(code) < 600
    holder = await issuer.verify(code, now=NOW + 10)
    assert holder.id_hmac == vault.index_of(ID)
    assert holder.name_masked == "张*" and holder.source == "dev-city"
    assert holder.subject == issuer.subject_for(vault.index_of(ID))
    assert (holder.expires_at.timestamp() - NOW) == 60
    header = jwt.get_unverified_header(code[5:])
    assert header == {"alg": "EdDSA", "kid": issuer.kid, "typ": "ssm+jwt"}
    payload = json.loads(base64.urlsafe_b64decode(_parts(code)[1] + "=="))
    assert ID not in json.dumps(payload) and "张三" not in json.dumps(payload)
    assert issuer.issue(ID, now=NOW) != code  # a fresh jti every time


async def test_dev_code_times_and_leeway(issuer):
    code = issuer.issue(ID, now=NOW)
    await issuer.verify(code, now=NOW + 60 + 29)
    with pytest.raises(ExpiredCode):
        await issuer.verify(code, now=NOW + 60 + 31)
    await issuer.verify(issuer.issue(ID, now=NOW + 25), now=NOW)  # issued 25 s "in the future": skew
    with pytest.raises(InvalidCode) as caught:
        await issuer.verify(issuer.issue(ID, now=NOW + 45), now=NOW)
    assert not isinstance(caught.value, ExpiredCode)
    long = issuer.issue(ID, ttl_seconds=3600, now=NOW)
    await issuer.verify(long, now=NOW + 3000)
    with pytest.raises(ValueError):
        issuer.issue(ID, ttl_seconds=3601)
    with pytest.raises(InvalidIdNumber):
        issuer.issue("310101199001011235")


def _forge(issuer: DevCityIssuer, claims: dict, *, key=None, alg="EdDSA", headers=None) -> str:
    head = {"kid": issuer.kid, "typ": "ssm+jwt", **(headers or {})}
    return PREFIX + jwt.encode(claims, key if key is not None else Ed25519PrivateKey.generate(), algorithm=alg, headers=head)


def _claims(issuer: DevCityIssuer, vault: PiiVault, **over) -> dict:
    return {
        "iss": "dev-city-idp", "aud": "cjmf", "sub": "dc_x", "idh": _b64(vault.index_of(ID)), "asr": "real_person",
        "iat": NOW, "exp": NOW + 60, "jti": _b64(os.urandom(16)), **over,
    }


async def test_every_forgery_is_one_invalid_code(issuer, vault):
    good = issuer.issue(ID, now=NOW)
    head, body, sig = _parts(good)
    flipped_body = _b64(base64.urlsafe_b64decode(body + "==").replace(b"real_person", b"real_persoN"))
    unsigned = _b64(json.dumps({"alg": "none", "kid": issuer.kid, "typ": "ssm+jwt"}).encode()) + "." + body + "."
    public_pem = issuer._public.public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo,
    )
    import hashlib
    import hmac as hmac_module

    hs_header = _b64(json.dumps({"alg": "HS256", "kid": issuer.kid, "typ": "ssm+jwt"}).encode())
    hs_sig = _b64(hmac_module.new(public_pem, f"{hs_header}.{body}".encode(), hashlib.sha256).digest())
    forgeries = {
        "tampered payload": f"{PREFIX}{head}.{flipped_body}.{sig}",
        "attacker key, same kid": _forge(issuer, _claims(issuer, vault)),
        "truncated signature": f"{PREFIX}{head}.{body}.{sig[:-4]}",
        "alg none": PREFIX + unsigned,
        "HS256 keyed with the public key": f"{PREFIX}{hs_header}.{body}.{hs_sig}",
        "unknown kid": _forge(issuer, _claims(issuer, vault), key=issuer._key, headers={"kid": "nope"}),
        "wrong typ": _forge(issuer, _claims(issuer, vault), key=issuer._key, headers={"typ": "cj-code+jwt"}),
        "wrong audience": _forge(issuer, _claims(issuer, vault, aud="cjmf-merchant"), key=issuer._key),
        "wrong issuer": _forge(issuer, _claims(issuer, vault, iss="cjmf"), key=issuer._key),
        "missing jti": _forge(issuer, {k: v for k, v in _claims(issuer, vault).items() if k != "jti"}, key=issuer._key),
        "bad idh": _forge(issuer, _claims(issuer, vault, idh="short"), key=issuer._key),
        "lifetime too long": _forge(issuer, _claims(issuer, vault, exp=NOW + 7200), key=issuer._key),
        "no prefix": good[5:],
        "other prefix": "CJ1:" + good[5:],
        "garbage": "SSM1:!!!!",
        "empty": "",
        "oversized": PREFIX + "a" * 5000,
        "not a string": 12345,
    }
    for name, code in forgeries.items():
        with pytest.raises(InvalidCode) as caught:
            await issuer.verify(code, now=NOW)
        assert type(caught.value) is InvalidCode, name
        assert caught.value.type == InvalidCode.type and caught.value.detail == InvalidCode.title, name


async def test_expired_forgery_is_invalid_not_expired(issuer, vault):
    # ExpiredCode is said only once the signature held: an old forged code is just invalid.
    with pytest.raises(InvalidCode) as caught:
        await issuer.verify(_forge(issuer, _claims(issuer, vault, iat=NOW - 500, exp=NOW - 440)), now=NOW)
    assert type(caught.value) is InvalidCode


def test_dev_issuer_refuses_production(settings, vault):
    with pytest.raises(DevIssuerRefused):
        DevCityIssuer(msgspec.structs.replace(settings, env="production"), vault)
    providers = CityProviders.from_settings(msgspec.structs.replace(settings, env="production"), vault)
    assert providers.dev is None


def test_dev_key_is_kept_under_the_data_dir(settings, vault, tmp_path):
    local = msgspec.structs.replace(settings, data_dir=tmp_path)
    first, second = DevCityIssuer(local, vault), DevCityIssuer(local, vault)
    assert first.kid == second.kid and first.jwks() == second.jwks()
    key_file = tmp_path / "dev-city" / "ed25519.pem"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    assert first.jwks()["keys"][0]["kty"] == "OKP" and "d" not in first.jwks()["keys"][0]


# --- the platform client against a real HTTP server -------------------------------------------


class _Platform(BaseHTTPRequestHandler):
    """Plays the city platform's 验码 interface; the code chooses the behaviour."""

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, *, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if length:
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        code = request["code"]
        self.server.seen.append((code, self.headers.get("authorization")))
        now = int(time.time())
        valid = {"result": "valid", "subject": "city-42", "id_number": ID, "name": "张三丰", "code_id": "c-" + code,
                 "expires_at": now + 60}
        if code.startswith("VALID"):
            self._send(200, json.dumps(valid).encode())
        elif code == "INVALID":
            self._send(200, b'{"result": "invalid"}')
        elif code == "EXPIRED":
            self._send(200, b'{"result": "expired"}')
        elif code == "SLOW":
            time.sleep(3)
            self._send(200, json.dumps(valid).encode())
        elif code == "DRIP":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        elif code == "ERROR":
            self._send(500, b'{"error": "boom"}')
        elif code == "MALFORMED":
            self._send(200, b'{"result": "valid", "subject": ')
        elif code == "WRONG_SHAPE":
            self._send(200, json.dumps({**valid, "expires_at": "soon"}).encode())
        elif code == "UNKNOWN_RESULT":
            self._send(200, b'{"result": "maybe"}')
        elif code == "BAD_ID":
            self._send(200, json.dumps({**valid, "id_number": "310101199001011235"}).encode())
        elif code == "FOREVER":
            self._send(200, json.dumps({**valid, "expires_at": now + 10 * 86400}).encode())
        elif code == "HUGE":
            self._send(200, b'{"result": "invalid", "pad": "' + b"x" * 100_000 + b'"}')
        elif code == "HUGE_UNDECLARED":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"result": "invalid", "pad": "' + b"x" * 100_000 + b'"}')
        elif code == "REDIRECT":
            self.send_response(302)
            self.send_header("location", "http://127.0.0.1:1/")
            self.send_header("content-length", "0")
            self.end_headers()
        else:
            self._send(404, b"{}")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # the client hanging up on a slow drip is the point of that case


@pytest.fixture(scope="module")
def platform_server():
    server = _QuietServer(("127.0.0.1", 0), _Platform)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
async def platform(platform_server, vault):
    url = f"http://127.0.0.1:{platform_server.server_address[1]}/verify"
    provider = PlatformCityProvider(url, vault, api_key="platform-key", timeout=httpx.Timeout(1.0), overall_timeout=1.5)
    yield provider
    await provider.aclose()


async def test_platform_valid_reply(platform, platform_server, vault):
    holder = await platform.verify("VALID-1")
    assert holder.id_hmac == vault.index_of(ID) and holder.name_masked == "张**"
    assert holder.subject == "city-42" and holder.source == "city-platform" and holder.jti.startswith("cp_")
    assert ("VALID-1", "Bearer platform-key") in platform_server.seen
    assert ID not in repr(holder) and "张三丰" not in repr(holder)


async def test_platform_invalid_and_expired_codes(platform):
    with pytest.raises(InvalidCode) as caught:
        await platform.verify("INVALID")
    assert type(caught.value) is InvalidCode
    with pytest.raises(ExpiredCode):
        await platform.verify("EXPIRED")
    for garbage in ("", "x" * 2000, "控制\x00", 7):
        with pytest.raises(InvalidCode):
            await platform.verify(garbage)


@pytest.mark.parametrize(
    "code",
    ["SLOW", "DRIP", "ERROR", "MALFORMED", "WRONG_SHAPE", "UNKNOWN_RESULT", "BAD_ID", "FOREVER", "HUGE",
     "HUGE_UNDECLARED", "REDIRECT", "NOT_FOUND"],
)
async def test_platform_failures_fail_closed(platform, code):
    started = time.monotonic()
    with pytest.raises(CityPlatformUnavailable) as caught:
        await platform.verify(code)
    assert time.monotonic() - started < 2.5  # the overall bound holds even for a slow drip
    assert caught.value.type == "city-platform-unavailable"
    assert ID not in caught.value.detail


async def test_platform_unreachable_fails_closed(vault):
    from tests.support import free_port

    provider = PlatformCityProvider(f"http://127.0.0.1:{free_port()}/verify", vault, timeout=httpx.Timeout(1.0))
    try:
        with pytest.raises(CityPlatformUnavailable):
            await provider.verify("VALID-2")
    finally:
        await provider.aclose()


async def test_providers_route_codes_by_prefix(settings, vault, platform, issuer):
    both = CityProviders(dev=issuer, platform=platform)
    assert (await both.verify(issuer.issue(ID))).source == "dev-city"
    assert (await both.verify("VALID-3")).source == "city-platform"
    dev_only = CityProviders(dev=issuer, platform=None)
    with pytest.raises(InvalidCode):
        await dev_only.verify("VALID-3")
    production = CityProviders(dev=None, platform=platform)
    with pytest.raises(InvalidCode):
        await production.verify(issuer.issue(ID))
