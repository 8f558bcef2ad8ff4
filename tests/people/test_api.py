"""Acceptance of the people half of issue 3 over the API: import, 随申码 login, /v1/me, refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api import create_app
from api.errors import PROBLEM_TYPE_PREFIX
from identity.city import DevCityIssuer
from identity.people import ROSTER_COLUMNS, synthetic_roster_csv
from tests.tokens import admin, auth_headers, staff, veteran
from tests.support import both_profiles, both_redis

HEADER = ",".join(ROSTER_COLUMNS)
ENROLLED = "310101199001011234"
SUSPENDED = "11010519491231002X"
STRANGER = "310104198503077772"
ROSTER = "\n".join(
    (
        HEADER,
        f"{ENROLLED},张三丰,VETERAN|COMBAT_VETERAN,,,VETERAN_CARD,ACTIVE,310000,浦东新区,1990-01-01",
        f"{SUSPENDED},欧阳娜娜,VETERAN|DISABLED_SERVICEMAN,3,因战,VETERAN_CARD,SUSPENDED,310000,310104,",
    )
) + "\n"
FULL_NAMES = ("张三丰", "欧阳娜娜")
INVALID = PROBLEM_TYPE_PREFIX + "invalid-token"


def cli_env(settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
        "CHONGJUN_ENV": settings.env,
        **extra,
    }


def issue_with_cli(settings, id_number: str, *, count: int = 1, ttl: int = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "suishen", "issue", "--id-number", id_number, "--count", str(count),
         "--ttl", str(ttl)],
        env=cli_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def import_csv(client, app, text: str, *, principal=None, **params):
    return await import_csv_bytes(client, app, text.encode(), principal=principal, **params)


async def import_csv_bytes(client, app, data: bytes, *, principal=None, **params):
    return await client.post(
        "/v1/admin/people/import",
        content=data,
        params=params,
        headers={"content-type": "text/csv", **auth_headers(app, principal or admin("city"))},
    )


def dev_issuer(app) -> DevCityIssuer:
    return app.state.city.dev


async def test_import_endpoint_reports_and_refuses(client, app, conn):
    response = await import_csv(client, app, ROSTER)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["imported"] and report["inserted"] == 2 and report["errors"] == []
    again = (await import_csv(client, app, ROSTER)).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 2)

    bad = ROSTER + f"{STRANGER[:-1]}9,王五,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310104,\n"
    refused = await import_csv(client, app, bad)
    assert refused.status_code == 422
    body = refused.json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + "roster-rejected"
    assert body["report"]["errors"][0]["line"] == 4 and body["report"]["errors"][0]["id_masked"] == "310***********7779"
    assert STRANGER[:-1] not in refused.text
    partial = await import_csv(client, app, bad, valid_only="true")
    assert partial.status_code == 200 and partial.json()["rejected"] == 1

    assert (await import_csv(client, app, ROSTER, principal=admin("district"))).status_code == 403
    assert (await import_csv(client, app, ROSTER, principal=staff())).status_code == 403
    assert (await import_csv(client, app, ROSTER, principal=veteran())).status_code == 403
    anonymous = await client.post("/v1/admin/people/import", content=ROSTER.encode(), headers={"content-type": "text/csv"})
    assert anonymous.status_code == 401
    wrong_type = await client.post(
        "/v1/admin/people/import", json={"rows": []}, headers=auth_headers(app, admin("city"))
    )
    assert wrong_type.status_code == 415
    assert await conn.fetchval("SELECT count(*) FROM people") == 2


@both_profiles
@both_redis
async def test_suishen_login_and_me(client, app, settings):
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    issued = issue_with_cli(settings, ENROLLED, count=3, ttl=600)
    assert issued.returncode == 0, issued.stderr
    codes = issued.stdout.split()
    assert len(codes) == 3 and len(set(codes)) == 3 and all(code.startswith("SSM1:") for code in codes)
    assert ENROLLED not in issued.stdout + issued.stderr

    login = await client.post("/v1/auth/suishen", json={"code": codes[0]})
    assert login.status_code == 200, login.text
    session = login.json()
    assert session["token_type"] == "Bearer" and session["expires_in"] == 900 and session["refresh_token"]
    assert session["person"]["name_masked"] == "张**"

    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.status_code == 200
    profile = me.json()
    assert profile["name_masked"] == "张**" and profile["id_number_masked"] == "310***********1234"
    assert [c["code"] for c in profile["categories"]] == ["VETERAN", "COMBAT_VETERAN"]
    assert profile["categories"][0]["label_zh"] == "退役军人"
    assert profile["district"] == "310115" and profile["district_name"] == "浦东新区"
    assert (profile["card_kind"], profile["card_status"]) == ("VETERAN_CARD", "ACTIVE")
    for secret in (ENROLLED, "张三丰", "1990-01-01", "19900101"):
        assert secret not in me.text and secret not in login.text
    assert "birth_date" not in profile

    # The same code again: replay, the one uniform 401.
    replay = await client.post("/v1/auth/suishen", json={"code": codes[0]})
    assert replay.status_code == 401 and replay.json()["type"] == INVALID
    assert (await client.post("/v1/auth/suishen", json={"code": codes[1]})).status_code == 200


async def test_not_enrolled_and_suspended_are_403(client, app):
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    issuer = dev_issuer(app)
    stranger = await client.post("/v1/auth/suishen", json={"code": issuer.issue(STRANGER)})
    assert stranger.status_code == 403 and stranger.json()["type"] == PROBLEM_TYPE_PREFIX + "not-enrolled"
    suspended = await client.post("/v1/auth/suishen", json={"code": issuer.issue(SUSPENDED)})
    assert suspended.status_code == 403 and suspended.json()["type"] == PROBLEM_TYPE_PREFIX + "card-suspended"
    for response in (stranger, suspended):
        assert "access_token" not in response.text


async def test_every_bad_code_is_the_same_401(client, app):
    import time

    assert (await import_csv(client, app, ROSTER)).status_code == 200
    issuer = dev_issuer(app)
    good = issuer.issue(ENROLLED)
    head, body, sig = good[5:].split(".")
    other = DevCityIssuer(msgspec.structs.replace(app.state.settings), app.state.pii_vault,
                          key=__import__("cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]).Ed25519PrivateKey.generate())
    bad_codes = [
        "",
        "garbage",
        "SSM1:",
        "SSM1:a.b.c",
        "SSM1:" + "A" * 5000,
        "x" * 200_000,
        f"SSM1:{head}.{body}.{sig[::-1]}",
        f"SSM1:{head}.{body[:-3]}.{sig}",
        other.issue(ENROLLED),  # signed by another key
        other.issue(ENROLLED, now=time.time() - 200),  # expired, and signed by another key
        "CJ1:" + good[5:],  # a 随申码 dressed as a 崇军码
        good.replace("SSM1:", "SSM2:"),
    ]
    answers = []
    for code in bad_codes:
        response = await client.post("/v1/auth/suishen", json={"code": code})
        assert response.status_code == 401, (code[:40], response.text)
        answers.append({k: v for k, v in response.json().items() if k != "request_id"})
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["type"] == INVALID
    wrong_type = await client.post("/v1/auth/suishen", json={"code": 5})
    assert wrong_type.status_code == 400
    unknown_field = await client.post("/v1/auth/suishen", json={"code": good, "admin": True})
    assert unknown_field.status_code == 400


async def test_me_needs_a_veteran(client, app):
    assert (await client.get("/v1/me")).status_code == 401
    assert (await client.get("/v1/me", headers=auth_headers(app, admin("city")))).status_code == 403
    unknown = await client.get("/v1/me", headers=auth_headers(app, veteran()))
    assert unknown.status_code == 404


async def test_dev_city_jwks_verifies_issued_codes(client, app):
    import jwt

    jwks = (await client.get("/dev-city/.well-known/jwks.json")).json()
    assert [key["kty"] for key in jwks["keys"]] == ["OKP"] and all("d" not in key for key in jwks["keys"])
    code = dev_issuer(app).issue(ENROLLED)
    key = jwt.PyJWK(jwks["keys"][0]).key
    claims = jwt.decode(code[5:], key, algorithms=["EdDSA"], audience="cjmf")
    assert claims["iss"] == "dev-city-idp" and "idh" in claims and ENROLLED not in str(claims)


async def test_dev_issuer_is_refused_in_production(client, app, settings):
    # `client` started a dev app first, so the test database has keys and the secrets exist.
    production = msgspec.structs.replace(settings, env="production")
    async with AsyncTestClient(app=create_app(production)) as prod:
        assert prod.app.state.city.dev is None
        assert (await prod.get("/dev-city/.well-known/jwks.json")).status_code == 404
        refused = await prod.post("/v1/auth/suishen", json={"code": dev_issuer(app).issue(ENROLLED)})
        assert refused.status_code == 401 and refused.json()["type"] == INVALID
    cli = issue_with_cli(settings, ENROLLED, CHONGJUN_ENV="production")
    assert cli.returncode != 0 and "production" in cli.stderr and cli.stdout == ""
    bad = issue_with_cli(settings, ENROLLED[:-1] + "5")
    assert bad.returncode != 0 and ENROLLED[:-1] not in bad.stderr


def test_cli_validates_count_and_ttl(settings):
    assert issue_with_cli(settings, ENROLLED, ttl=3601).returncode != 0
    assert issue_with_cli(settings, ENROLLED, count=0).returncode != 0


@pytest.fixture
def pg_dump():
    import pathlib

    import pgserver

    binary = pathlib.Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
    assert binary.exists()
    return binary


async def test_no_id_number_or_name_in_a_database_dump(client, app, settings, pg_dump):
    text = ROSTER + synthetic_roster_csv(500, seed=99).split("\n", 1)[1]
    assert (await import_csv(client, app, text)).status_code == 200
    login = await client.post("/v1/auth/suishen", json={"code": dev_issuer(app).issue(ENROLLED)})
    assert login.status_code == 200
    dump = subprocess.run(
        [str(pg_dump), "--data-only", "--no-owner", "--dbname", settings.database_url],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "COPY public.people" in dump and len(dump) > 100_000
    rows = [line.split(",") for line in text.strip().split("\n")[1:]]
    assert len(rows) == 502
    leaked = [row[0] for row in rows if row[0] in dump] + [row[1] for row in rows if len(row[1]) > 1 and row[1] in dump]
    assert leaked == []


def test_login_over_real_http_with_logs_free_of_pii(settings, tmp_path):
    """A real server (2 workers): the contract's 400/413 on the login route, the whole flow, and logs
    at DEBUG that hold no ID number, full name or code."""
    import asyncio

    import httpx

    from tests.support import live_server
    from tests.tokens import access_token, keyring_for

    log_file = tmp_path / "server.log"
    env = {"CHONGJUN_LOG_LEVEL": "DEBUG"}
    with live_server(settings, workers=2, extra_env=env, log_file=log_file) as base_url, httpx.Client(
        base_url=base_url, timeout=20
    ) as http:
        ring = asyncio.run(keyring_for(settings))
        admin_headers = {"Authorization": "Bearer " + access_token(ring, admin("city")), "content-type": "text/csv"}
        imported = http.post("/v1/admin/people/import", content=ROSTER.encode(), headers=admin_headers)
        assert imported.status_code == 200, imported.text
        rejected = http.post(
            "/v1/admin/people/import",
            content=(ROSTER + f"{STRANGER[:-1]}9,王五,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310104,\n").encode(),
            headers=admin_headers,
        )
        assert rejected.status_code == 422

        malformed = http.post("/v1/auth/suishen", content=b'{"code": ', headers={"content-type": "application/json"})
        assert malformed.status_code == 400
        assert malformed.headers["content-type"].startswith("application/problem+json")
        assert malformed.json()["type"] == PROBLEM_TYPE_PREFIX + "malformed-json"
        big = b'{"code": "' + b"A" * (1024 * 1024 + 10) + b'"}'
        # Repeated: without draining the refused body about 1 in 100 of these was lost to a TCP reset.
        for _ in range(30):
            too_big = http.post("/v1/auth/suishen", content=big, headers={"content-type": "application/json"})
            assert too_big.status_code == 413 and too_big.json()["type"] == PROBLEM_TYPE_PREFIX + "body-too-large"
        garbage = http.post("/v1/auth/suishen", json={"code": "SSM1:garbage"})
        assert garbage.status_code == 401 and garbage.json()["type"] == INVALID

        codes = issue_with_cli(settings, ENROLLED, count=2).stdout.split()
        login = http.post("/v1/auth/suishen", json={"code": codes[0]})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["name_masked"] == "张**"
        assert http.post("/v1/auth/suishen", json={"code": codes[0]}).status_code == 401  # replay, other worker too
        stranger = http.post("/v1/auth/suishen", json={"code": issue_with_cli(settings, STRANGER).stdout.strip()})
        assert stranger.status_code == 403
    logs = log_file.read_text(errors="replace")
    assert '"path":"/v1/auth/suishen"' in logs.replace(" ", "")  # DEBUG/INFO lines were written
    for secret in (ENROLLED, SUSPENDED, STRANGER, STRANGER[:-1] + "9", *FULL_NAMES, "王五", codes[0][5:40], token[:40]):
        assert secret not in logs, secret


async def test_suspending_a_card_by_reimport_ends_the_sessions(client, app):
    assert (await import_csv(client, app, ROSTER)).status_code == 200
    session = (await client.post("/v1/auth/suishen", json={"code": dev_issuer(app).issue(ENROLLED)})).json()
    suspended = ROSTER.replace("浦东新区,1990-01-01", "浦东新区,1990-01-01").replace(
        "VETERAN_CARD,ACTIVE,310000,浦东新区", "VETERAN_CARD,SUSPENDED,310000,浦东新区"
    )
    report = (await import_csv(client, app, suspended)).json()
    assert report["updated"] == 1
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 401
    again = await client.post("/v1/auth/suishen", json={"code": dev_issuer(app).issue(ENROLLED)})
    assert again.status_code == 403 and again.json()["type"] == PROBLEM_TYPE_PREFIX + "card-suspended"


def test_import_roster_cli(settings, tmp_path):
    good = tmp_path / "roster.csv"
    good.write_text(ROSTER + synthetic_roster_csv(300, seed=5).split("\n", 1)[1], encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "import-roster", str(good)],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "inserted 302" in run.stderr and "writing to PostgreSQL" in run.stderr
    again = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "import-roster", str(good)],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 0 and "unchanged 302" in again.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text(ROSTER + f"{STRANGER[:-1]}9,王五,VETERAN,,,VETERAN_CARD,ACTIVE,310000,310104,\n", encoding="gb18030")
    refused = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "import-roster", str(bad)],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode == 1 and "nothing was imported" in refused.stderr
    assert "310***********7779" in refused.stderr and STRANGER[:-1] not in refused.stderr + refused.stdout
    partial = subprocess.run(
        [sys.executable, "-m", "chongjun.cli", "import-roster", "--valid-only", str(bad)],
        env=cli_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert partial.returncode == 0 and "rejected 1" in partial.stderr
