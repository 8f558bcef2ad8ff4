"""Staff and admin accounts: argon2id, TOTP, uniform failures, throttling, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import msgspec
import pytest
import redis.asyncio as aioredis

import identity
from tests.factories.world import make_merchant
from tests.support import both_redis
from identity import (
    AccountExists,
    InvalidAccount,
    InvalidCredentials,
    LoginThrottled,
    NewAccount,
    StaffLogin,
    TotpRequired,
)
from identity.accounts import USER_FAILURE_LIMIT, authenticate_account
from identity.totp import STEP_SECONDS, totp_at, verify_totp

PASSWORD = "correct horse battery staple"


def _new(**fields) -> NewAccount:
    base = {"kind": "admin", "username": "city.admin", "password": PASSWORD, "role": "city"}
    return msgspec.convert(base | fields, NewAccount)


async def test_create_admin_and_staff(conn, keyring):
    account, uri = await identity.create_account(conn, _new())
    assert account.kind == "admin" and account.role == "city" and uri is None
    stored = await conn.fetchval("SELECT password_hash FROM accounts WHERE id = $1", account.id)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    merchant = (await make_merchant(conn)).id  # accounts.merchant_id references merchants (0021)
    clerk, _ = await identity.create_account(
        conn, _new(kind="staff", username="clerk@venue", role="cashier", merchant_id=str(merchant))
    )
    assert clerk.merchant_id == merchant
    with pytest.raises(AccountExists):
        await identity.create_account(conn, _new(username="city.admin", role="auditor"))


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "root"},
        {"role": "district"},
        {"role": "city", "district": "310115"},
        {"kind": "staff", "role": None},
        {"kind": "admin", "merchant_id": str(uuid.uuid4())},
    ],
)
async def test_invalid_accounts_are_refused(conn, keyring, fields):
    with pytest.raises(InvalidAccount):
        await identity.create_account(conn, _new(**fields))


def test_short_password_refused_by_the_schema():
    with pytest.raises(msgspec.ValidationError):
        _new(password="short")


async def _login(client, username="city.admin", password=PASSWORD, **extra):
    return await client.post("/v1/auth/staff", json={"username": username, "password": password, **extra})


@both_redis
async def test_admin_and_staff_login_over_http(client, app, conn):
    district, _ = await identity.create_account(conn, _new(username="xuhui", role="district", district="310104"))
    merchant = (await make_merchant(conn)).id  # accounts.merchant_id references merchants (0021)
    clerk, _ = await identity.create_account(
        conn, _new(kind="staff", username="clerk", role="cashier", merchant_id=str(merchant))
    )
    response = await _login(client, "XuHui ")
    assert response.status_code == 200, response.text
    body = response.json()
    principal = identity.verify_access_token(body["access_token"], keyring=app.state.keyring)
    assert principal.session_id is not None  # the session's refresh family (claim `sid`)
    assert principal == identity.Principal(
        "admin", district.id, role="district", district="310104", session_id=principal.session_id
    )
    assert body["refresh_token"] and body["expires_in"] == 900

    response = await _login(client, "clerk")
    principal = identity.verify_access_token(response.json()["access_token"], keyring=app.state.keyring)
    assert principal == identity.Principal(
        "staff", clerk.id, role="cashier", merchant_id=merchant, session_id=principal.session_id
    )
    assert principal.session_id is not None


async def test_unknown_user_and_wrong_password_look_the_same(client, conn, keyring):
    await identity.create_account(conn, _new())
    wrong = await _login(client, password="not the password at all")
    unknown = await _login(client, username="nobody")
    assert wrong.status_code == unknown.status_code == 401
    a, b = wrong.json(), unknown.json()
    a.pop("request_id"), b.pop("request_id")
    assert a == b and a["type"] == "urn:chongjun:problem:invalid-credentials"


async def test_disabled_account_cannot_log_in_or_refresh(client, conn, keyring):
    account, _ = await identity.create_account(conn, _new())
    session = (await _login(client)).json()
    assert await identity.set_account_disabled(conn, account.id, disabled=True, redis=None)
    assert (await _login(client)).status_code == 401
    response = await client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401


async def test_a_role_change_takes_effect_at_the_next_refresh(client, app, conn):
    account, _ = await identity.create_account(conn, _new())
    session = (await _login(client)).json()
    await conn.execute("UPDATE accounts SET role = 'district', district = '310115' WHERE id = $1", account.id)
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    principal = identity.verify_access_token(refreshed.json()["access_token"], keyring=app.state.keyring)
    assert (principal.role, principal.district) == ("district", "310115")


async def test_totp_is_required_once_enabled_and_single_use(conn, redis, keyring):
    account, uri = await identity.create_account(conn, _new(with_totp=True), secrets=keyring.secrets)
    assert uri.startswith("otpauth://totp/") and "secret=" in uri
    import base64
    from urllib.parse import parse_qs, urlsplit

    secret_b32 = parse_qs(urlsplit(uri).query)["secret"][0]
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    now = 1_800_000_000.0
    login = StaffLogin(username="city.admin", password=PASSWORD)
    with pytest.raises(TotpRequired):
        await authenticate_account(conn, redis, login, client="t", now=now, secrets=keyring.secrets)
    wrong = StaffLogin(username="city.admin", password=PASSWORD, totp="000000" if totp_at(secret, int(now) // 30) != "000000" else "111111")
    with pytest.raises(InvalidCredentials):
        await authenticate_account(conn, redis, wrong, client="t", now=now, secrets=keyring.secrets)
    previous_step = StaffLogin(username="city.admin", password=PASSWORD, totp=totp_at(secret, int(now) // STEP_SECONDS - 1))
    principal = await authenticate_account(conn, redis, previous_step, client="t", now=now, secrets=keyring.secrets)
    assert principal.subject == account.id
    # The same (or an older) step again is a replay.
    with pytest.raises(InvalidCredentials):
        await authenticate_account(conn, redis, previous_step, client="t", now=now, secrets=keyring.secrets)
    current = StaffLogin(username="city.admin", password=PASSWORD, totp=totp_at(secret, int(now) // STEP_SECONDS))
    assert (await authenticate_account(conn, redis, current, client="t", now=now, secrets=keyring.secrets)).subject == account.id
    too_old = StaffLogin(username="city.admin", password=PASSWORD, totp=totp_at(secret, int(now) // STEP_SECONDS - 2))
    with pytest.raises(InvalidCredentials):
        await authenticate_account(conn, redis, too_old, client="t", now=now + 1, secrets=keyring.secrets)
    stored = await conn.fetchval("SELECT totp_secret_enc FROM accounts WHERE id = $1", account.id)
    assert secret not in bytes(stored)


def _a_wrong_code(uri: str) -> str:
    """A six-digit code that none of the steps now accepted (this one, the one before) would give."""
    import base64
    import time
    from urllib.parse import parse_qs, urlsplit

    encoded = parse_qs(urlsplit(uri).query)["secret"][0]
    secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    step = int(time.time()) // STEP_SECONDS
    taken = {totp_at(secret, s) for s in range(step - 2, step + 3)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in taken)


async def test_a_missing_totp_is_said_only_after_the_password_held(client, conn, keyring):
    """The app can ask for the code; the answer tells nothing to whoever lacks the password."""
    _, uri = await identity.create_account(conn, _new(with_totp=True), secrets=keyring.secrets)
    disabled, _ = await identity.create_account(conn, _new(username="gone.admin", with_totp=True), secrets=keyring.secrets)
    await identity.set_account_disabled(conn, disabled.id, disabled=True, redis=None)
    needs_code = await _login(client)
    assert needs_code.status_code == 401
    assert needs_code.json()["type"] == "urn:chongjun:problem:totp-required"
    for refused in (
        await _login(client, password="not the password at all"),  # wrong password, no code
        await _login(client, username="nobody"),  # unknown user, no code
        await _login(client, username="gone.admin"),  # right password of a disabled account
        await _login(client, totp=_a_wrong_code(uri)),
    ):
        assert refused.status_code == 401
        assert refused.json()["type"] == "urn:chongjun:problem:invalid-credentials"


def test_totp_matches_rfc6238_vectors():
    secret = b"12345678901234567890"  # RFC 6238 Appendix B, SHA-1
    for at, expected in ((59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924")):
        assert totp_at(secret, at // 30) == expected[-6:]


@pytest.mark.parametrize("code", ["", "12345", "1234567", "١٢٣٤٥٦", "12345６", "abcdef", "12 456"])
def test_a_totp_code_that_is_not_six_ascii_digits_never_matches(code):
    assert verify_totp(b"12345678901234567890", code, 59.0) is None  # never raises either


@both_redis
async def test_repeated_failures_are_throttled_per_username(client, conn, keyring):
    await identity.create_account(conn, _new())
    for _ in range(USER_FAILURE_LIMIT):
        assert (await _login(client, password="wrong password!")).status_code == 401
    blocked = await _login(client)  # even the right password waits now
    assert blocked.status_code == 429
    assert blocked.json()["type"] == "urn:chongjun:problem:login-throttled"
    assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60


@both_redis
async def test_failures_are_throttled_per_client(conn, redis, keyring):
    from identity.throttle import CLIENT_FAILURE_LIMIT, _counter

    # Start just below the limit (each real failure costs one argon2 verify, ~0.25 s here).
    await redis.set(_counter("client", "10.0.0.9", CLIENT_FAILURE_LIMIT).key, CLIENT_FAILURE_LIMIT - 2, ex=900)
    for attempt in range(2):
        with pytest.raises(InvalidCredentials):
            await authenticate_account(conn, redis, StaffLogin(username=f"u{attempt}", password="x"), client="10.0.0.9", secrets=keyring.secrets)
    with pytest.raises(LoginThrottled):
        await authenticate_account(conn, redis, StaffLogin(username="fresh", password="x"), client="10.0.0.9", secrets=keyring.secrets)
    with pytest.raises(InvalidCredentials):  # another client is not affected
        await authenticate_account(conn, redis, StaffLogin(username="fresh", password="x"), client="10.0.0.10", secrets=keyring.secrets)


async def test_throttling_survives_a_redis_outage(conn, keyring):
    await identity.create_account(conn, _new(username="outage.admin"))
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        login = StaffLogin(username="outage.admin", password="wrong password!")
        for _ in range(USER_FAILURE_LIMIT):
            with pytest.raises(InvalidCredentials):
                await authenticate_account(conn, dead, login, client="c", secrets=keyring.secrets)
        with pytest.raises(LoginThrottled) as caught:
            await authenticate_account(conn, dead, StaffLogin(username="outage.admin", password=PASSWORD), client="c", secrets=keyring.secrets)
    finally:
        await dead.aclose()
    assert 0 < caught.value.extensions["retry_after"] <= 15 * 60
    # Counted in PostgreSQL, where every worker sees it: the user's 5, the client's 5.
    counts = sorted(r["attempts"] for r in await conn.fetch("SELECT attempts FROM login_attempts"))
    assert counts == [USER_FAILURE_LIMIT, USER_FAILURE_LIMIT]


async def test_a_success_while_redis_is_down_clears_the_user_and_gives_the_client_its_attempt(conn, keyring):
    await identity.create_account(conn, _new(username="outage.admin"))
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(InvalidCredentials):
            await authenticate_account(conn, dead, StaffLogin(username="outage.admin", password="wrong!!"), client="c", secrets=keyring.secrets)
        await authenticate_account(conn, dead, StaffLogin(username="outage.admin", password=PASSWORD), client="c", secrets=keyring.secrets)
    finally:
        await dead.aclose()
    assert [r["attempts"] for r in await conn.fetch("SELECT attempts FROM login_attempts")] == [1]


async def test_success_resets_the_username_counter(conn, redis, keyring):
    await identity.create_account(conn, _new())
    for _ in range(USER_FAILURE_LIMIT - 1):
        with pytest.raises(InvalidCredentials):
            await authenticate_account(conn, redis, StaffLogin(username="city.admin", password="wrong!"), client="c", secrets=keyring.secrets)
    await authenticate_account(conn, redis, StaffLogin(username="city.admin", password=PASSWORD), client="c", secrets=keyring.secrets)
    with pytest.raises(InvalidCredentials):
        await authenticate_account(conn, redis, StaffLogin(username="city.admin", password="wrong!"), client="c", secrets=keyring.secrets)
    await authenticate_account(conn, redis, StaffLogin(username="city.admin", password=PASSWORD), client="c", secrets=keyring.secrets)


def _cli(settings, *args, stdin: str = "") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "CHONGJUN_DATA_DIR": str(settings.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "chongjun.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


async def test_create_admin_cli_reads_the_password_from_stdin(settings, conn, client):
    done = _cli(settings, "create-admin", "--username", "pudong", "--role", "district", "--district", "310115",
                stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert "pudong" in done.stdout and PASSWORD not in done.stdout + done.stderr
    row = await conn.fetchrow("SELECT kind, role, district FROM accounts WHERE username = 'pudong'")
    assert dict(row) == {"kind": "admin", "role": "district", "district": "310115"}
    assert (await _login(client, "pudong")).status_code == 200
    again = _cli(settings, "create-admin", "--username", "pudong", "--role", "city", stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "exists" in again.stderr
    short = _cli(settings, "create-admin", "--username", "x2", "--role", "city", stdin="short\n")
    assert short.returncode != 0


async def test_keys_rotate_cli(settings, conn, client):
    before = await conn.fetch("SELECT kid, state FROM signing_keys")
    done = _cli(settings, "keys", "rotate")
    assert done.returncode == 0, done.stderr
    after = {r["state"]: r["kid"] for r in await conn.fetch("SELECT kid, state FROM signing_keys")}
    old = {r["state"]: r["kid"] for r in before}
    assert after["retired"] == old["active"] and after["active"] == old["next"]
    listing = _cli(settings, "keys", "list")
    assert all(kid in listing.stdout for kid in after.values())
    # "--": a kid is base64url and may begin with "-" (this test failed once on such a kid).
    removed = _cli(settings, "keys", "remove", "--", after["retired"])
    assert removed.returncode == 0, removed.stderr
    assert _cli(settings, "keys", "remove", "--", after["active"]).returncode != 0
