"""崇军码: issue, QR images (decoded with zxing), owner-only access, scan resolution."""

from __future__ import annotations

import time
import uuid

import pytest

import identity
from identity import CityProviders, ExpiredCode, InvalidCode
from identity.codes import MAX_CODE_LENGTH, subject_for
from tests.qr import decode_qr_png
from tests.tokens import auth_headers, device, staff, veteran
from tests.support import both_profiles, both_redis

NO_CITY = CityProviders(dev=None, platform=None)
"""No city provider: every 随申码 is simply invalid (what a process without a platform URL has)."""


async def _issue(client, app, person, **body):
    response = await client.post("/v1/me/codes", json=body, headers=auth_headers(app, veteran(person)))
    assert response.status_code == 201, response.text
    return response.json()


@both_profiles
@both_redis
async def test_issued_code_shape(client, app, settings):
    person = uuid.uuid4()
    body = await _issue(client, app, person)
    assert set(body) == {"code", "jti", "expires_at", "refresh_after", "png_url", "svg_url"}
    code = body["code"]
    assert code.startswith("CJ1:") and len(code) < MAX_CODE_LENGTH
    assert str(person) not in code
    import jwt

    header = jwt.get_unverified_header(code[4:])
    claims = jwt.decode(code[4:], options={"verify_signature": False})
    alg = "SM2" if settings.crypto_profile == "gm" else "EdDSA"
    assert header == {"alg": alg, "kid": app.state.keyring.active.kid, "typ": "cj-code+jwt"}
    assert set(claims) == {"iss", "aud", "sub", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 60 and claims["aud"] == "cjmf-merchant"
    assert claims["jti"] == body["jti"] and len(claims["jti"]) == 22  # 128 bits
    assert claims["sub"] != str(person) and len(claims["sub"]) == 22
    verified = identity.verify_code(code, keyring=app.state.keyring)
    assert verified.person_id == person and verified.jti == body["jti"]


async def test_pseudonym_is_stable_per_person_and_distinct_between_people(keyring):
    a, b = uuid.uuid4(), uuid.uuid4()
    assert subject_for(keyring, a) == subject_for(keyring, a)
    assert subject_for(keyring, a) != subject_for(keyring, b)


@both_redis
async def test_png_decodes_to_exactly_the_code(client, app):
    person = uuid.uuid4()
    body = await _issue(client, app, person)
    png = await client.get(body["png_url"], headers=auth_headers(app, veteran(person)))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["cache-control"] == "no-store"
    assert decode_qr_png(png.content) == body["code"]
    svg = await client.get(body["svg_url"], headers=auth_headers(app, veteran(person)))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content.lstrip().startswith(b"<?xml") and b"<svg" in svg.content


@both_redis
async def test_only_the_owner_gets_the_image(client, app):
    person = uuid.uuid4()
    body = await _issue(client, app, person)
    for principal in (veteran(), staff()):
        response = await client.get(body["png_url"], headers=auth_headers(app, principal))
        assert response.status_code in (403, 404)
    assert (await client.get(body["png_url"])).status_code == 401
    other = await client.get(body["png_url"], headers=auth_headers(app, veteran()))
    assert other.status_code == 404 and other.json()["type"] == "urn:chongjun:problem:code-not-found"


@pytest.mark.parametrize("name", ["nosuchjtinosuchjtinosu.png", "x.gif", "..%2F..%2Fetc.png", "a" * 41, "plain"])
async def test_unknown_or_odd_image_names_are_4xx(client, app, name):
    response = await client.get(f"/v1/me/codes/{name}", headers=auth_headers(app, veteran()))
    assert 400 <= response.status_code < 500


@both_redis
async def test_image_is_gone_when_the_code_expires(client, app, redis):
    person = uuid.uuid4()
    body = await _issue(client, app, person)
    key = f"cj:code:{{{person}}}:{body['jti']}"
    assert 60 < await redis.ttl(key) <= 90
    await redis.delete(key)  # what the TTL does after 90 s
    response = await client.get(body["png_url"], headers=auth_headers(app, veteran(person)))
    assert response.status_code == 404


async def test_code_for_a_benefit_carries_it(client, app):
    person, benefit = uuid.uuid4(), uuid.uuid4()
    body = await _issue(client, app, person, benefit_id=str(benefit))
    holder = await identity.resolve_scan_code(body["code"], keyring=app.state.keyring, providers=app.state.city)
    assert holder.benefit_id == benefit and holder.person_id == person and holder.source == "cj_code"


async def test_codes_are_for_veterans_only(client, app):
    for principal in (staff(), device()):
        response = await client.post("/v1/me/codes", json={}, headers=auth_headers(app, principal))
        # A device that does not exist is refused by the device check (401) before the guard (403).
        assert response.status_code == (401 if principal.kind == "device" else 403)
    bad = await client.post("/v1/me/codes", json={"benefit_id": "nope"}, headers=auth_headers(app, veteran()))
    assert bad.status_code == 400


@both_profiles
@both_redis
async def test_resolve_scan_code(keyring, redis):
    person = uuid.uuid4()
    now = time.time()
    issued = await identity.issue_code(redis, person, keyring=keyring, now=now)
    holder = await identity.resolve_scan_code(issued.code, keyring=keyring, providers=NO_CITY, now=now + 10)
    assert (holder.person_id, holder.jti, holder.expires_at) == (person, issued.jti, issued.expires_at)
    with pytest.raises(ExpiredCode):
        await identity.resolve_scan_code(issued.code, keyring=keyring, providers=NO_CITY, now=now + 91)
    for raw in ("SSM1:whatever", "", "x" * 5000, None, 42, issued.code[:-3]):
        with pytest.raises(InvalidCode):
            await identity.resolve_scan_code(raw, keyring=keyring, providers=NO_CITY)


async def test_verify_is_cheap(keyring, redis):
    """The scan hot path is pure CPU over the in-memory ring; measure its rate on this machine."""
    codes = [(await identity.issue_code(redis, uuid.uuid4(), keyring=keyring)).code for _ in range(50)]
    rounds = 40
    started = time.perf_counter()
    for _ in range(rounds):
        for code in codes:
            identity.verify_code(code, keyring=keyring)
    rate = rounds * len(codes) / (time.perf_counter() - started)
    print(f"verify_code: {rate:.0f}/s on one core")
    # A loose floor: the machine running the suite may be shared. That verify does no I/O at all
    # is shown by the threat tests, which verify against a ring with no database behind it.
    assert rate > 200


async def test_post_without_a_body_is_fine(client, app):
    response = await client.post("/v1/me/codes", headers=auth_headers(app, veteran()))
    assert response.status_code == 201, response.text


async def test_redis_down_is_503_not_500(keyring):
    import redis.asyncio as aioredis

    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(identity.CodeStoreUnavailable):
            await identity.issue_code(dead, uuid.uuid4(), keyring=keyring)
        with pytest.raises(identity.CodeStoreUnavailable):
            await identity.code_image(dead, uuid.uuid4(), "A" * 22, "png")
    finally:
        await dead.aclose()
