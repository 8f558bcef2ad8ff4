"""Threats of reference/identity.md §(c) against our tokens and 崇军码, one test (or case) each.

Every forgery must fail with the one external error (InvalidToken / InvalidCode, 401
`invalid-token`), never with a hint of which check failed, and never with anything else.
"""

from __future__ import annotations

from tests.support import intl_only

import hashlib
import hmac
import json
import time
import tracemalloc
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import identity
from identity import ExpiredCode, InvalidCode, InvalidToken, Principal
from identity.codes import CODE_PREFIX, subject_for
from identity.tokens import CODE, VETERAN, sign
from tests.auth import forge
from tests.tokens import auth_headers, staff, veteran

NOW = 1_800_000_000  # a fixed clock for every time-dependent check


@pytest.fixture(scope="module")
def keyring(memory_keyring):
    """Pure crypto: the in-memory ring (no database per case keeps ~100 cases fast)."""
    return memory_keyring


def _our_signed(ring, header_typ: str, payload: dict) -> str:
    """Signed with OUR active key, but with claims we choose (to test claim checks, not signatures)."""
    active = ring.active
    return jwt.encode(payload, active.private_key, algorithm=active.alg, headers={"kid": active.kid, "typ": header_typ})


def _hmac_token(header: dict, payload: dict, key: bytes) -> str:
    signing_input = forge.b64(json.dumps(header).encode()) + "." + forge.b64(json.dumps(payload).encode())
    return signing_input + "." + forge.b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def forgeries(ring, *, typ: str, aud: str, sub: str, now: float = NOW) -> dict[str, str]:
    """Hostile variants of a token of kind (typ, aud); all must be rejected as invalid."""
    active = ring.active
    kid = active.kid
    body = forge.claims(aud=aud, sub=sub, now=now)
    genuine = _our_signed(ring, typ, body)
    public_pem = active.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw_public = active.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    attacker = forge.attacker_ed25519()
    no_exp = {k: v for k, v in body.items() if k != "exp"}
    return {
        "tampered_payload": forge.tamper_payload(genuine, iat=body["iat"] + 1),
        "attacker_key_same_kid": forge.signed_with(attacker, "EdDSA", {"kid": kid, "typ": typ}, body),
        "signature_truncated": genuine[:-8],
        "signature_stripped": genuine.rsplit(".", 1)[0] + ".",
        "signature_of_other_token": genuine.rsplit(".", 1)[0]
        + "."
        + _our_signed(ring, typ, {**body, "jti": forge.b64(b"x" * 16)}).rsplit(".", 1)[1],
        "alg_none": forge.unsigned({"alg": "none", "kid": kid, "typ": typ}, body),
        "alg_none_with_signature": forge.unsigned({"alg": "none", "kid": kid, "typ": typ}, body, b"x" * 64),
        "hs256_with_public_pem": _hmac_token({"alg": "HS256", "kid": kid, "typ": typ}, body, public_pem),
        "hs256_with_raw_public_key": _hmac_token({"alg": "HS256", "kid": kid, "typ": typ}, body, raw_public),
        "es256_under_eddsa_kid": forge.signed_with(forge.attacker_es256(), "ES256", {"kid": kid, "typ": typ}, body),
        "ed448_under_ed25519_kid": forge.signed_with(forge.attacker_ed448(), "EdDSA", {"kid": kid, "typ": typ}, body),
        "unknown_kid": forge.signed_with(attacker, "EdDSA", {"kid": "A" * 16, "typ": typ}, body),
        "kid_missing": forge.signed_with(attacker, "EdDSA", {"typ": typ}, body),
        "kid_path_traversal": forge.signed_with(attacker, "EdDSA", {"kid": "../../../etc/passwd", "typ": typ}, body),
        "kid_not_a_string": forge.raw_signed(attacker, {"alg": "EdDSA", "kid": 7, "typ": typ}, body),
        "jku_points_to_attacker": forge.signed_with(
            attacker, "EdDSA", {"kid": kid, "typ": typ, "jku": "https://attacker.example/jwks.json"}, body
        ),
        "embedded_jwk": forge.signed_with(
            attacker,
            "EdDSA",
            {"kid": kid, "typ": typ, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": forge.b64(b"a" * 32)}},
            body,
        ),
        "wrong_audience": _our_signed(ring, typ, {**body, "aud": "somebody-else"}),
        "wrong_issuer": _our_signed(ring, typ, {**body, "iss": "dev-city-idp"}),
        "missing_exp": _our_signed(ring, typ, no_exp),
        "missing_jti": _our_signed(ring, typ, {k: v for k, v in body.items() if k != "jti"}),
        "iat_45s_in_future": _our_signed(ring, typ, {**body, "iat": int(now) + 45, "exp": int(now) + 100}),
        "lifetime_too_long": _our_signed(ring, typ, {**body, "exp": body["iat"] + 10 * 24 * 3600}),
        "exp_as_string": _our_signed(ring, typ, {**body, "exp": str(body["exp"])}),
        "garbage": "not-a-token-at-all",
        "three_garbage_parts": "aaaaaaaaaaaa.bbbbbbbbbbbb.cccccccccccc",
        "oversized": "a" * 3000 + "." + "b" * 3000 + "." + "c" * 3000,
        "empty": "",
    }


FORGERY_NAMES = [
    "tampered_payload",
    "attacker_key_same_kid",
    "signature_truncated",
    "signature_stripped",
    "signature_of_other_token",
    "alg_none",
    "alg_none_with_signature",
    "hs256_with_public_pem",
    "hs256_with_raw_public_key",
    "es256_under_eddsa_kid",
    "ed448_under_ed25519_kid",
    "unknown_kid",
    "kid_missing",
    "kid_path_traversal",
    "kid_not_a_string",
    "jku_points_to_attacker",
    "embedded_jwk",
    "wrong_audience",
    "wrong_issuer",
    "missing_exp",
    "missing_jti",
    "iat_45s_in_future",
    "lifetime_too_long",
    "exp_as_string",
    "garbage",
    "three_garbage_parts",
    "oversized",
    "empty",
]


def test_forgery_list_is_complete(keyring):
    assert set(forgeries(keyring, typ="x", aud="y", sub="z")) == set(FORGERY_NAMES)


@pytest.mark.parametrize("name", FORGERY_NAMES)
def test_forged_access_token_rejected(keyring, name):
    token = forgeries(keyring, typ=VETERAN.typ, aud=VETERAN.audience, sub=str(uuid.uuid4()))[name]
    with pytest.raises(InvalidToken) as caught:
        identity.verify_access_token(token, keyring=keyring, now=NOW)
    assert type(caught.value) is InvalidToken


@pytest.mark.parametrize("name", FORGERY_NAMES)
def test_forged_code_rejected_as_invalid_not_expired(keyring, name):
    sub = subject_for(keyring, uuid.uuid4())
    token = forgeries(keyring, typ=CODE.typ, aud=CODE.audience, sub=sub)[name]
    with pytest.raises(InvalidCode) as caught:
        identity.verify_code(CODE_PREFIX + token, keyring=keyring, now=NOW)
    assert type(caught.value) is InvalidCode


def test_genuine_tokens_pass_the_same_checks(keyring):
    """The control for the forgery tests: the untouched token of each kind verifies."""
    person = uuid.uuid4()
    token = _our_signed(keyring, VETERAN.typ, forge.claims(aud=VETERAN.audience, sub=str(person), now=NOW))
    assert identity.verify_access_token(token, keyring=keyring, now=NOW) == Principal("veteran", person)
    code = CODE_PREFIX + _our_signed(
        keyring, CODE.typ, forge.claims(aud=CODE.audience, sub=subject_for(keyring, person), now=NOW)
    )
    assert identity.verify_code(code, keyring=keyring, now=NOW).person_id == person


# --- clock skew and expiry ---------------------------------------------------------------------


@pytest.mark.parametrize(("skew", "ok"), [(-45, True), (-25, True), (0, True), (25, True), (45, False)])
def test_iat_skew(keyring, skew, ok):
    """A token issued by a clock `skew` s ahead of ours: up to 30 s ahead is tolerated."""
    person = uuid.uuid4()
    token = identity.issue_access_token(veteran(person), keyring=keyring, now=NOW + skew)
    if ok:
        assert identity.verify_access_token(token, keyring=keyring, now=NOW).subject == person
    else:
        with pytest.raises(InvalidToken):
            identity.verify_access_token(token, keyring=keyring, now=NOW)


@pytest.mark.parametrize(("skew", "ok"), [(-25, True), (25, True), (-45, True), (45, False)])
def test_code_issued_by_skewed_clock(keyring, skew, ok):
    code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, uuid.uuid4())}, ttl_seconds=60, now=NOW + skew)
    if ok:
        identity.verify_code(code, keyring=keyring, now=NOW)
    else:
        with pytest.raises(InvalidCode) as caught:
            identity.verify_code(code, keyring=keyring, now=NOW)
        assert type(caught.value) is InvalidCode


@pytest.mark.parametrize(("after_exp", "ok"), [(-1, True), (29, True), (31, False), (3600, False)])
def test_code_expiry_with_leeway(keyring, after_exp, ok):
    code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, uuid.uuid4())}, ttl_seconds=60, now=NOW)
    at = NOW + 60 + after_exp
    if ok:
        identity.verify_code(code, keyring=keyring, now=at)
    else:
        with pytest.raises(ExpiredCode):
            identity.verify_code(code, keyring=keyring, now=at)


@pytest.mark.parametrize(("after_exp", "ok"), [(29, True), (31, False)])
def test_access_token_expiry_is_plain_invalid(keyring, after_exp, ok):
    token = identity.issue_access_token(veteran(), ttl_seconds=900, keyring=keyring, now=NOW)
    if ok:
        identity.verify_access_token(token, keyring=keyring, now=NOW + 900 + after_exp)
    else:
        with pytest.raises(InvalidToken) as caught:
            identity.verify_access_token(token, keyring=keyring, now=NOW + 900 + after_exp)
        assert type(caught.value) is InvalidToken


def test_expired_forgery_is_invalid_not_expired(keyring):
    """`expired` is only said after the signature held: an old forged code is just invalid."""
    body = forge.claims(aud=CODE.audience, sub=subject_for(keyring, uuid.uuid4()), now=NOW - 3600)
    token = forge.signed_with(forge.attacker_ed25519(), "EdDSA", {"kid": keyring.active.kid, "typ": CODE.typ}, body)
    with pytest.raises(InvalidCode) as caught:
        identity.verify_code(CODE_PREFIX + token, keyring=keyring, now=NOW)
    assert type(caught.value) is InvalidCode


# --- token-type confusion ----------------------------------------------------------------------


def test_session_token_rejected_as_code(keyring):
    token = identity.issue_access_token(veteran(), keyring=keyring, now=NOW)
    with pytest.raises(InvalidCode):
        identity.verify_code(CODE_PREFIX + token, keyring=keyring, now=NOW)


def test_code_rejected_as_session(keyring):
    code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, uuid.uuid4())}, ttl_seconds=60, now=NOW)
    for candidate in (code, code[len(CODE_PREFIX) :]):
        with pytest.raises(InvalidToken):
            identity.verify_access_token(candidate, keyring=keyring, now=NOW)


def test_code_typ_with_session_audience_rejected(keyring):
    """`typ` and `aud` must agree: a code header on a session audience fits neither."""
    body = forge.claims(aud=VETERAN.audience, now=NOW)
    token = _our_signed(keyring, CODE.typ, body)
    with pytest.raises(InvalidToken):
        identity.verify_access_token(token, keyring=keyring, now=NOW)
    with pytest.raises(InvalidCode):
        identity.verify_code(CODE_PREFIX + token, keyring=keyring, now=NOW)


@pytest.mark.parametrize("kind", ["veteran", "staff", "admin", "device"])
def test_each_access_kind_verifies_only_as_itself(keyring, kind):
    from tests import tokens as t

    principal = {"veteran": t.veteran, "staff": t.staff, "admin": t.admin, "device": t.device}[kind]()
    token = identity.issue_access_token(principal, keyring=keyring, now=NOW)
    assert identity.verify_access_token(token, keyring=keyring, now=NOW) == principal
    header = jwt.get_unverified_header(token)
    payload = jwt.decode(token, options={"verify_signature": False})
    # Re-labelling the kind (typ) breaks the audience check even with our own signature.
    for other in ("cj-session+jwt", "cj-staff+jwt", "cj-admin+jwt", "cj-device+jwt"):
        if other != header["typ"]:
            with pytest.raises(InvalidToken):
                identity.verify_access_token(_our_signed(keyring, other, payload), keyring=keyring, now=NOW)


@pytest.mark.parametrize("generation", ["2", True, 2.0, None, [2]])
def test_device_secret_generation_must_be_an_integer(keyring, generation):
    """`gen` decides whether a rolled secret's token still passes: it is an int or the token is invalid."""
    from identity.tokens import DEVICE
    from tests import tokens as t

    payload = jwt.decode(
        identity.issue_access_token(t.device(), keyring=keyring, now=NOW), options={"verify_signature": False}
    )
    assert payload["gen"] == 1
    payload["gen"] = generation
    token = _our_signed(keyring, DEVICE.typ, payload)
    if generation is None:  # no generation at all: the token verifies, and the device check refuses it
        assert identity.verify_access_token(token, keyring=keyring, now=NOW).secret_generation is None
        return
    with pytest.raises(InvalidToken):
        identity.verify_access_token(token, keyring=keyring, now=NOW)


def test_code_prefix_is_strict(keyring):
    code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, uuid.uuid4())}, ttl_seconds=60, now=NOW)
    for variant in (code[len(CODE_PREFIX) :], "cj1:" + code[4:], " " + code, code + " ", "CJ2:" + code[4:], code + "\n"):
        with pytest.raises(InvalidCode):
            identity.verify_code(variant, keyring=keyring, now=NOW)


def test_oversized_code_rejected_before_any_work(keyring):
    """A 10 MB code is refused by its length alone: nothing is decoded or copied (measured as the
    memory the call allocates, which, unlike a time limit, does not depend on the machine's load)."""
    code = CODE_PREFIX + "a" * 10_000_000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidCode):
            identity.verify_code(code, keyring=keyring, now=NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.text(max_size=1200), st.binary(max_size=600).map(lambda b: forge.b64(b))))
def test_random_input_only_ever_invalid(keyring, raw):
    for candidate in (raw, CODE_PREFIX + raw):
        with pytest.raises(InvalidCode):
            identity.verify_code(candidate, keyring=keyring, now=NOW)
        with pytest.raises(InvalidToken):
            identity.verify_access_token(candidate, keyring=keyring, now=NOW)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bit_flips_in_a_genuine_code_are_invalid(keyring, data):
    code = CODE_PREFIX + sign(keyring, CODE, {"sub": subject_for(keyring, uuid.uuid4())}, ttl_seconds=60, now=NOW)
    index = data.draw(st.integers(min_value=len(CODE_PREFIX), max_value=len(code) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))
    mutated = code[:index] + replacement + code[index + 1 :]
    if mutated == code:
        return
    try:
        identity.verify_code(mutated, keyring=keyring, now=NOW)
    except InvalidCode as exc:
        assert not isinstance(exc, ExpiredCode)
    else:
        # Only a change in base64 padding bits of the last character can leave the bytes equal.
        assert index == len(code) - 1


# --- over HTTP: one uniform 401 -----------------------------------------------------------------

HTTP_FORGERIES = [name for name in FORGERY_NAMES if name not in ("empty",)]


@intl_only
async def test_every_forgery_gets_the_same_401_over_http(client, app):
    ring = app.state.keyring
    now = time.time()
    cases = forgeries(ring, typ=VETERAN.typ, aud=VETERAN.audience, sub=str(uuid.uuid4()), now=now)
    expired = identity.issue_access_token(veteran(), ttl_seconds=60, keyring=ring, now=now - 3600)
    code = CODE_PREFIX + sign(ring, CODE, {"sub": subject_for(ring, uuid.uuid4())}, ttl_seconds=60)
    cases |= {"expired": expired, "code_as_bearer": code, "bare_code_as_bearer": code[len(CODE_PREFIX) :]}
    bodies = set()
    for name, token in cases.items():
        if name == "empty":
            continue
        response = await client.post("/v1/me/codes", json={}, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        body.pop("request_id")
        bodies.add(json.dumps(body, sort_keys=True))
    assert len(bodies) == 1, bodies
    assert json.loads(bodies.pop())["type"] == "urn:chongjun:problem:invalid-token"


async def test_wrong_scheme_is_invalid_token(client, app):
    token = auth_headers(app, veteran())["Authorization"].split()[1]
    for header in (f"Basic {token}", "Bearer", "Bearer    ", token):
        response = await client.post("/v1/me/codes", json={}, headers={"Authorization": header})
        assert response.status_code == 401
        assert response.json()["type"] == "urn:chongjun:problem:invalid-token"


async def test_staff_token_on_a_veteran_route_is_403(client, app):
    response = await client.post("/v1/me/codes", json={}, headers=auth_headers(app, staff()))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_no_token_on_a_protected_route_is_401_unauthenticated(client):
    response = await client.post("/v1/me/codes", json={})
    assert response.status_code == 401
    assert response.json()["type"] == "urn:chongjun:problem:unauthenticated"


async def test_public_paths_ignore_a_bad_token(client):
    headers = {"Authorization": "Bearer garbage"}
    assert (await client.get("/health", headers=headers)).status_code == 200
    assert (await client.get("/.well-known/jwks.json", headers=headers)).status_code == 200
