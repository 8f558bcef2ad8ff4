"""Staff and admin accounts: argon2id passwords, optional TOTP, throttled logins.

Every way a login can fail (unknown user, wrong password, wrong TOTP, disabled account) is the
same InvalidCredentials, and an unknown user still costs one argon2 verify, so neither the
answer nor its timing tells whether a username exists. The one exception is said only after
the password held: a TOTP account's login without its code is TotpRequired.

Each attempt is counted by `identity.throttle` before its password is checked (per username and
per client address, atomically, in Redis or in PostgreSQL while Redis is down); past the limit a
login answers 429 with Retry-After, even with the right password.

等保 level 3 (身份鉴别 a, d): every password set passes `check_password_policy`; a password set by
an admin (an account created or reset over HTTP) is an initial one, and its holder must choose a
new one with `change_password` before the account logs in (`PasswordChangeRequired`, 403); a new
password may not be any of the account's last `PASSWORD_HISTORY`; where `require_admin_totp`
(production), an admin without TOTP cannot be created or log in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from foundation.audit import write_audit
from identity import db
from identity.duties import ROLE_DUTY, assign_duty, duty_of_role
from identity.errors import (
    AccountExists,
    InvalidAccount,
    InvalidCredentials,
    PasswordChangeRequired,
    PasswordReused,
    TotpEnrollmentRequired,
    TotpRequired,
    WeakPassword,
)
from identity.keys import KeyRing
from identity.secrets import SecretStore
from identity.sessions import account_principal, issue_session, revoke_subject_sessions
from identity.errors import LoginThrottled
from identity.throttle import (
    CLIENT_FAILURE_LIMIT,
    THROTTLE_WINDOW_SECONDS,
    USER_FAILURE_LIMIT,
    reserve_login,
)
from identity.totp import new_totp_secret, provisioning_uri, verify_totp
from identity.types import AccountRecord, NewAccount, PasswordChange, Principal, SessionTokens, StaffLogin

__all__ = (
    "ADMIN_ROLES",
    "CLIENT_FAILURE_LIMIT",
    "PASSWORD_HISTORY",
    "THROTTLE_WINDOW_SECONDS",
    "USER_FAILURE_LIMIT",
    "authenticate_account",
    "change_password",
    "check_password_policy",
    "create_account",
    "reset_password",
    "set_account_disabled",
    "staff_login",
)

log = logging.getLogger("chongjun.identity.accounts")

TOTP_SECRET = "account-totp-key"
ADMIN_ROLES = tuple(ROLE_DUTY)
"""The roles of an admin account (`Principal.role` of an admin): the one list of them, each with
its duty (identity.duties.ROLE_DUTY: city, district → system; security → security; auditor → audit)."""

PASSWORD_HISTORY = 5
"""A new password may not be the current one nor any of the 4 before it."""
_COMMON = frozenset({
    "password1234", "passw0rd1234", "qwertyuiop12", "123456789012", "admin1234567", "p@ssw0rd1234",
    "1qaz2wsx3edc", "abc123456789", "welcome12345", "changeme1234",
})


def check_password_policy(password: str) -> None:
    """等保 level-3 complexity (GB/T 22239-2019 8.1.4.1 a): 12 characters at least, and three of
    the four kinds (a-z, A-Z, 0-9, anything else: punctuation, space, 汉字), or a passphrase of 16
    characters and two kinds; at least 5 distinct characters; not a well-known password.
    WeakPassword (422) says which rule failed."""
    kinds = (
        any("a" <= c <= "z" for c in password),
        any("A" <= c <= "Z" for c in password),
        any("0" <= c <= "9" for c in password),
        any(not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9") for c in password),
    )
    if len(password) < 12:
        raise WeakPassword("a password has at least 12 characters")
    if sum(kinds) < 3 and not (len(password) >= 16 and sum(kinds) >= 2):
        raise WeakPassword(
            "a password mixes three of: lower case, upper case, digits, other characters"
            " (a passphrase of 16 characters or more: two of them)"
        )
    if len(set(password)) < 5:
        raise WeakPassword("a password has at least 5 different characters")
    if password.lower() in _COMMON:
        raise WeakPassword("that password is on the list of well-known ones")

# argon2id with the library's RFC 9106 "low memory" profile (64 MiB, t=3, p=4).
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def account_record(row: asyncpg.Record) -> AccountRecord:
    return AccountRecord(
        id=row["id"],
        kind=row["kind"],
        username=row["username"],
        role=row["role"],
        district=row["district"],
        merchant_id=row["merchant_id"],
        totp_enabled=row["totp_secret_enc"] is not None,
        disabled=row["disabled_at"] is not None,
        created_at=row["created_at"],
        password_must_change=row["password_must_change"],
        duty=row["duty"],
    )


def _check(new: NewAccount) -> None:
    if new.kind == "admin":
        if new.role not in ADMIN_ROLES:
            raise InvalidAccount(f"an admin's role is one of {', '.join(ADMIN_ROLES)}")
        if (new.role == "district") != (new.district is not None):
            raise InvalidAccount("a district admin needs a district; other admins have none")
        if new.merchant_id is not None:
            raise InvalidAccount("an admin belongs to no merchant")
    elif new.merchant_id is None:
        raise InvalidAccount("a staff account needs a merchant_id")


async def create_account(
    conn: asyncpg.Connection, new: NewAccount, *, secrets: SecretStore | None = None,
    actor: Principal | None = None, require_admin_totp: bool = False,
) -> tuple[AccountRecord, str | None]:
    """Create a staff or admin account; returns it and, with `with_totp`, the otpauth:// URI
    (which needs `secrets`, the store holding the key that seals TOTP secrets).

    An admin account gets the duty of its role (三员分立) in the same transaction. `actor` None is
    the operator at the command line, who typed the password; an admin `actor` sets an initial
    password, which the holder must change before logging in. The URI holds the TOTP secret:
    show it once to the account holder and never log it.
    """
    new = msgspec.structs.replace(new, username=new.username.strip().lower())
    _check(new)
    if new.kind == "admin" and require_admin_totp and not new.with_totp:
        raise InvalidAccount("administrators need TOTP here: create the account with_totp")
    check_password_policy(new.password)
    password_hash = await asyncio.to_thread(_hasher.hash, new.password)
    async with conn.transaction():
        row = await db.create_account(
            conn, new=new, password_hash=password_hash, must_change=actor is not None and actor.kind == "admin"
        )
        if row is None:
            raise AccountExists()
        uri = None
        if new.with_totp:
            if secrets is None:
                raise TypeError("create_account needs `secrets` to seal a TOTP secret")
            key = secrets.versioned(TOTP_SECRET)
            secret = new_totp_secret()
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(key.current).encrypt(nonce, secret, row["id"].bytes)
            await db.set_account_totp(conn, row["id"], secret_enc=sealed, key_version=key.current_version)
            uri = provisioning_uri(secret, new.username)
        await audit_account(conn, actor, "account.create", row, role=new.role, kind=new.kind, totp=new.with_totp)
        if new.kind == "admin":
            await assign_duty(conn, row["id"], duty_of_role(new.role), actor=actor)
        row = await db.get_account(conn, row["id"])
    return account_record(row), uri


async def _new_password(conn: asyncpg.Connection, account_id: UUID, password: str, *, must_change: bool) -> None:
    """Policy, then history: refuse any of the last PASSWORD_HISTORY, keep the old hash, set the new one."""
    check_password_policy(password)
    for old in await db.recent_password_hashes(conn, account_id, count=PASSWORD_HISTORY):
        try:
            if await asyncio.to_thread(_hasher.verify, old, password):
                raise PasswordReused(f"choose a password other than this account's last {PASSWORD_HISTORY}")
        except (VerificationError, InvalidHashError):
            continue
    new_hash = await asyncio.to_thread(_hasher.hash, password)
    await db.replace_account_password(conn, account_id, new_hash, must_change=must_change, keep=PASSWORD_HISTORY - 1)


async def change_password(
    conn: asyncpg.Connection, redis: aioredis.Redis, change: PasswordChange, *, client: str, secrets: SecretStore,
    require_admin_totp: bool = False, now: float | None = None,
) -> None:
    """`POST /v1/auth/password`: the holder proves the current password (and TOTP: the same checks
    and throttle as a login) and sets a new one. This is how an initial password is replaced. Every
    open session of the account ends; the holder then logs in with the new password.

    `conn` outside a transaction, as for `authenticate_account`.
    """
    principal = await authenticate_account(
        conn, redis, StaffLogin(username=change.username, password=change.password, totp=change.totp),
        client=client, secrets=secrets, now=now, changing_password=True, require_admin_totp=require_admin_totp,
    )
    async with conn.transaction():
        await _new_password(conn, principal.subject, change.new_password, must_change=False)
        await revoke_subject_sessions(conn, principal.subject, redis=redis)
        row = await db.get_account(conn, principal.subject)
        await audit_account(conn, principal, "account.password.change", row)


async def reset_password(
    conn: asyncpg.Connection, account_id: UUID, password: str, *, actor: Principal, redis: aioredis.Redis | None,
) -> None:
    """An admin sets another account's password: an initial one again (the holder must change it),
    and the account's sessions end. The caller checks that `actor` may (the security duty)."""
    await _new_password(conn, account_id, password, must_change=True)
    await revoke_subject_sessions(conn, account_id, redis=redis)
    await audit_account(conn, actor, "account.password.reset", await db.get_account(conn, account_id))


async def audit_account(conn: asyncpg.Connection, actor: Principal | None, action: str, row, **detail) -> None:
    # `actor` None: the operator at the command line.
    await write_audit(
        conn, actor_kind=actor.kind if actor else "system", actor_id=str(actor.subject) if actor else "cli",
        actor_role=actor.role if actor else None, actor_district=actor.district if actor else None,
        action=action, object_kind="account", object_id=str(row["id"]), district=row["district"],
        detail={k: (str(v) if isinstance(v, UUID) else v) for k, v in detail.items()},
    )


async def set_account_disabled(
    conn: asyncpg.Connection, account_id: UUID, *, disabled: bool, redis: aioredis.Redis | None,
    actor: Principal | None = None,
) -> bool:
    """Disable or re-enable an account; disabling also ends its sessions (see identity.sessions:
    with `redis`, its access tokens are refused on every worker within a second)."""
    found = await db.set_account_disabled(conn, account_id, disabled=disabled)
    if found and disabled:
        await revoke_subject_sessions(conn, account_id, redis=redis)
    if found:
        row = await db.get_account(conn, account_id)
        await audit_account(conn, actor, "account.disable" if disabled else "account.enable", row)
    return found


async def _audit_login(conn: asyncpg.Connection, row: asyncpg.Record | None, action: str, *, reason: str) -> None:
    # Never the username tried (people type passwords there) nor the client address: the account
    # when it exists, else "unknown".
    await write_audit(
        conn, actor_kind="anonymous", actor_id="-", action=action, object_kind="account",
        object_id=str(row["id"]) if row is not None else "unknown",
        district=row["district"] if row is not None else None, detail={"reason": reason},
    )


async def _password_matches(password_hash: str | None, password: str) -> bool:
    global _dummy_hash
    if password_hash is None:
        # Spend the same work on an unknown user as on a known one.
        if _dummy_hash is None:
            _dummy_hash = await asyncio.to_thread(_hasher.hash, os.urandom(16).hex())
        password_hash = _dummy_hash
        password = password + "\x00unknown"
    try:
        return await asyncio.to_thread(_hasher.verify, password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate_account(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    login: StaffLogin,
    *,
    client: str,
    secrets: SecretStore,
    now: float | None = None,
    changing_password: bool = False,
    require_admin_totp: bool = False,
) -> Principal:
    """The principal of a correct login; InvalidCredentials, TotpRequired or LoginThrottled otherwise.

    After the credentials held (and only then, so they tell nothing to a guesser): an initial
    password refuses the login with PasswordChangeRequired (unless `changing_password`), and with
    `require_admin_totp` an admin without TOTP is refused with TotpEnrollmentRequired.

    `conn` outside a transaction: the attempt is counted before the password is checked, and
    while Redis is down that count is a PostgreSQL row that a failed login must not roll back.
    """
    at = time.time() if now is None else now
    username = login.username.strip().lower()
    try:
        attempt = await reserve_login(conn, redis, username=username, client=client)
    except LoginThrottled:
        await _audit_login(conn, None, "auth.login_failed", reason="login-throttled")
        raise
    row = await db.get_account_by_username(conn, username)
    ok = await _password_matches(row["password_hash"] if row else None, login.password)
    step = None
    if ok and row["totp_secret_enc"] is not None:
        if not login.totp and row["disabled_at"] is None:
            log.info("login refused", extra={"fields": {"client": client, "reason": "totp-required"}})
            await _audit_login(conn, row, "auth.login_failed", reason="totp-required")
            raise TotpRequired()
        key = secrets.versioned(TOTP_SECRET).get(row["totp_key_version"])
        sealed = row["totp_secret_enc"]
        secret = AESGCM(key).decrypt(sealed[:12], sealed[12:], row["id"].bytes)
        step = verify_totp(secret, login.totp, at) if login.totp else None
        ok = step is not None
    if ok and row["disabled_at"] is not None:
        ok = False
    # A TOTP step is good for one login only (RFC 6238 §5.2): the update refuses an old step.
    if ok and not await db.record_login(conn, row["id"], totp_step=step):
        ok = False
    if not ok:
        log.info("login refused", extra={"fields": {"client": client, "known_user": row is not None}})
        # `conn` is outside a transaction: the entry stays although the request fails.
        await _audit_login(conn, row, "auth.login_failed", reason="invalid-credentials")
        raise InvalidCredentials()
    await attempt.succeeded()
    if require_admin_totp and row["kind"] == "admin" and row["totp_secret_enc"] is None:
        await _audit_login(conn, row, "auth.login_failed", reason="totp-enrollment-required")
        raise TotpEnrollmentRequired()
    if row["password_must_change"] and not changing_password:
        await _audit_login(conn, row, "auth.login_failed", reason="password-change-required")
        raise PasswordChangeRequired()
    if row["password_hash"] and _hasher.check_needs_rehash(row["password_hash"]):
        await db.set_account_password(conn, row["id"], await asyncio.to_thread(_hasher.hash, login.password))
    return account_principal(row)


Admit = Callable[[asyncpg.Connection, Principal], Awaitable[None]]
"""A check of the layers above identity, run after the password held and before a session is
opened; it raises to refuse (the merchants package refuses staff of a merchant that is not active)."""


async def staff_login(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    login: StaffLogin,
    *,
    client: str,
    keyring: KeyRing,
    admit: Admit | None = None,
    now: float | None = None,
    require_admin_totp: bool = False,
) -> SessionTokens:
    """`POST /v1/auth/staff`: check the credentials and open a session (staff or admin token)."""
    principal = await authenticate_account(
        conn, redis, login, client=client, secrets=keyring.secrets, now=now, require_admin_totp=require_admin_totp
    )
    # One transaction for the admission and the session, so what admit locks (the merchant's
    # status) holds until the session exists: a concurrent suspension then ends it too.
    async with conn.transaction():
        if admit is not None:
            await admit(conn, principal)
        tokens = await issue_session(conn, principal, keyring=keyring, now=now)
        await write_audit(
            conn, actor_kind=principal.kind, actor_id=str(principal.subject), actor_role=principal.role,
            actor_district=principal.district, action="auth.login", object_kind="account",
            object_id=str(principal.subject), district=principal.district,
        )
        return tokens
