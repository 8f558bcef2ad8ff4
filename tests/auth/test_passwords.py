"""等保 level 3 (GB/T 22239-2019, 身份鉴别) in the application: password complexity and history,
forced change of an initial password before the first login, TOTP required for admins where the
deployment says so (production by default)."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from litestar.testing import AsyncTestClient

import identity
from api.app import create_app
from foundation.settings import Settings
from identity import PASSWORD_HISTORY, Principal, WeakPassword, check_password_policy
from identity.totp import STEP_SECONDS, totp_at
from tests.tokens import auth_headers

INITIAL = "Initial-Passw0rd-9"


def _problem(response, status: int, slug: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["type"] == "urn:chongjun:problem:" + slug, response.text


@pytest.mark.parametrize(("password", "why"), [
    ("Short-1a", "12 characters"),                 # three kinds, but short
    ("alllowercaseonly", "three of"),              # one kind
    ("lower and space", "three of"),               # two kinds under 16
    ("Aa1Aa1Aa1Aa1", "5 different"),              # three kinds, three characters
    ("Password1234", "well-known"),
])
def test_the_policy_refuses_weak_passwords(password, why):
    with pytest.raises(WeakPassword, match=why):
        check_password_policy(password)


@pytest.mark.parametrize("password", ["correct horse battery", "Tr0ub4dor&3xyz", "长江后浪推前浪-River2026", "a-long-enough-password"])
def test_the_policy_accepts_passphrases_and_mixed_passwords(password):
    check_password_policy(password)


async def _security(conn) -> Principal:
    record, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username="sec.officer", password=INITIAL, role="security")
    )
    return Principal(kind="admin", subject=record.id, role="security")


async def _login(client, username: str, password: str, **extra):
    return await client.post("/v1/auth/staff", json={"username": username, "password": password, **extra})


async def _change(client, username: str, password: str, new_password: str, **extra):
    body = {"username": username, "password": password, "new_password": new_password, **extra}
    return await client.post("/v1/auth/password", json=body)


async def test_an_initial_password_is_changed_before_anything_else_works(app, client, conn):
    security = await _security(conn)
    made = await client.post(
        "/v1/admin/accounts", json={"username": "new.auditor", "password": INITIAL, "role": "auditor"},
        headers=auth_headers(app, security),
    )
    assert made.status_code == 201 and made.json()["account"]["password_must_change"] is True, made.text
    # The right initial password opens no session: no token to call anything with.
    refused = await _login(client, "new.auditor", INITIAL)
    _problem(refused, 403, "password-change-required")
    assert "access_token" not in refused.json()
    # A wrong current password says nothing else; the initial one cannot be kept; weak ones fail.
    _problem(await _change(client, "new.auditor", "not the password at all", "Another-Passw0rd-1"), 401, "invalid-credentials")
    _problem(await _change(client, "new.auditor", INITIAL, INITIAL), 422, "password-reused")
    _problem(await _change(client, "new.auditor", INITIAL, "aaaaaaaaaaaaaaaa"), 422, "weak-password")
    assert (await _change(client, "new.auditor", INITIAL, "Another-Passw0rd-1")).status_code == 204
    _problem(await _login(client, "new.auditor", INITIAL), 401, "invalid-credentials")
    session = await _login(client, "new.auditor", "Another-Passw0rd-1")
    assert session.status_code == 200, session.text
    actions = [r["action"] for r in await conn.fetch(
        "SELECT action FROM audit_log WHERE object_id = $1 ORDER BY seq", made.json()["account"]["id"]
    )]
    assert actions[:2] == ["account.create", "admin.duty.assign"]
    assert "account.password.change" in actions and actions[-1] == "auth.login"
    # The operator's own accounts (command line, demo seed) are not initial: they log in at once.
    assert (await _login(client, "sec.officer", INITIAL)).status_code == 200


async def test_a_reset_by_the_security_administrator_is_an_initial_password_again(app, client, conn):
    security = await _security(conn)
    city, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username="city.ops", password=INITIAL, role="city")
    )
    session = (await _login(client, "city.ops", INITIAL)).json()
    reset = await client.patch(
        f"/v1/admin/accounts/{city.id}", json={"password": "Reset-Passw0rd-77"}, headers=auth_headers(app, security)
    )
    assert reset.status_code == 200 and reset.json()["password_must_change"] is True, reset.text
    _problem(await client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401, "invalid-token")
    _problem(await _login(client, "city.ops", "Reset-Passw0rd-77"), 403, "password-change-required")
    assert (await _change(client, "city.ops", "Reset-Passw0rd-77", "Chosen-Passw0rd-88")).status_code == 204
    assert (await _login(client, "city.ops", "Chosen-Passw0rd-88")).status_code == 200


async def test_none_of_the_last_passwords_comes_back(client, conn):
    await identity.create_account(conn, identity.NewAccount(kind="admin", username="cycler", password=INITIAL, role="city"))
    used = [INITIAL] + [f"Cycle-Passw0rd-{i}" for i in range(PASSWORD_HISTORY)]
    for current, new in zip(used, used[1:]):
        assert (await _change(client, "cycler", current, new)).status_code == 204
    current = used[-1]
    for old in used[-PASSWORD_HISTORY:]:  # the current one and the 4 before it
        _problem(await _change(client, "cycler", current, old), 422, "password-reused")
    assert (await _change(client, "cycler", current, used[-PASSWORD_HISTORY - 1])).status_code == 204  # 6th back: allowed
    assert await conn.fetchval("SELECT count(*) FROM password_history") == PASSWORD_HISTORY - 1


def test_admin_totp_is_required_in_production_unless_said_otherwise():
    assert Settings(env="production").admin_totp_required is True
    assert Settings(env="dev").admin_totp_required is False
    assert Settings(env="dev", admin_totp="required").admin_totp_required is True
    assert Settings(env="production", admin_totp="optional").admin_totp_required is False


def _code(uri: str) -> str:
    encoded = parse_qs(urlsplit(uri).query)["secret"][0]
    secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    return totp_at(secret, int(time.time()) // STEP_SECONDS)


@pytest.mark.parametrize("admin_totp", ["required", "optional"])
async def test_admins_without_totp_where_it_is_required(settings, conn, admin_totp):
    app = create_app(msgspec.structs.replace(settings, admin_totp=admin_totp))
    async with AsyncTestClient(app=app) as client:
        security = await _security(conn)
        plain, _ = await identity.create_account(
            conn, identity.NewAccount(kind="admin", username="no.totp", password=INITIAL, role="city")
        )
        _, uri = await identity.create_account(
            conn, identity.NewAccount(kind="admin", username="with.totp", password=INITIAL, role="city", with_totp=True),
            secrets=app.state.keyring.secrets,
        )
        created = await client.post(
            "/v1/admin/accounts", json={"username": "made.plain", "password": INITIAL, "role": "city"},
            headers=auth_headers(app, security),
        )
        with_code = await _login(client, "with.totp", INITIAL, totp=_code(uri))
        assert with_code.status_code == 200, with_code.text
        without = await _login(client, "no.totp", INITIAL)
        if admin_totp == "required":
            _problem(without, 403, "totp-enrollment-required")
            _problem(created, 422, "invalid-account")
            _problem(await _login(client, "no.totp", "not the password at all"), 401, "invalid-credentials")  # no oracle
        else:
            assert without.status_code == 200 and created.status_code == 201, (without.text, created.text)
    assert plain.duty == "system"
