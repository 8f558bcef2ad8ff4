"""SQL of the identity package: explicit columns, `$n` parameters, one function per query."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from foundation.paging import Keyset
from identity.types import NewAccount

# --- signing keys -----------------------------------------------------------------------------

_KEY_COLUMNS = "kid, alg, state, public_jwk, private_enc, kek_version"


async def list_signing_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM signing_keys WHERE state <> 'removed' ORDER BY created_at, kid"
    )


async def list_all_signing_keys(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT kid, alg, state, created_at, activated_at, retired_at, removed_at FROM signing_keys"
        " ORDER BY created_at, kid"
    )


async def create_signing_key(
    conn: asyncpg.Connection,
    *,
    kid: str,
    alg: str,
    state: str,
    public_jwk: dict[str, Any],
    private_enc: bytes,
    kek_version: int,
) -> None:
    await conn.execute(
        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_enc, kek_version, activated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'active' THEN now() END)",
        kid,
        alg,
        state,
        public_jwk,
        private_enc,
        kek_version,
    )


async def get_signing_key_kid(conn: asyncpg.Connection, *, state: str) -> str | None:
    return await conn.fetchval("SELECT kid FROM signing_keys WHERE state = $1", state)


async def get_signing_key_alg(conn: asyncpg.Connection, kid: str) -> str | None:
    return await conn.fetchval("SELECT alg FROM signing_keys WHERE kid = $1", kid)


async def discard_next_key(conn: asyncpg.Connection) -> str | None:
    """A next key that never signed leaves the ring (a profile switch replaces it)."""
    return await conn.fetchval(
        "UPDATE signing_keys SET state = 'removed', removed_at = now(), private_enc = ''::bytea"
        " WHERE state = 'next' RETURNING kid"
    )


async def retire_active_key(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval(
        "UPDATE signing_keys SET state = 'retired', retired_at = now() WHERE state = 'active' RETURNING kid"
    )


async def activate_next_key(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval(
        "UPDATE signing_keys SET state = 'active', activated_at = now() WHERE state = 'next' RETURNING kid"
    )


async def remove_retired_key(conn: asyncpg.Connection, kid: str) -> str | None:
    return await conn.fetchval(
        "UPDATE signing_keys SET state = 'removed', removed_at = now(), private_enc = ''::bytea"
        " WHERE kid = $1 AND state = 'retired' RETURNING kid",
        kid,
    )


async def lock_signing_keys(conn: asyncpg.Connection) -> None:
    """Serialise key creation and rotation across workers for the rest of the transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('chongjun.signing_keys'))")


# --- accounts ---------------------------------------------------------------------------------

_ACCOUNT_COLUMNS = (
    "id, kind, username, password_hash, role, district, merchant_id, totp_secret_enc, totp_key_version,"
    " totp_last_step, disabled_at, created_at, password_must_change,"
    " (SELECT duty FROM admin_duties d WHERE d.account_id = accounts.id) AS duty"
)


async def create_account(
    conn: asyncpg.Connection, *, new: NewAccount, password_hash: str, must_change: bool = False
) -> asyncpg.Record | None:
    """The new row, or None when the username is taken."""
    return await conn.fetchrow(
        "INSERT INTO accounts (kind, username, password_hash, role, district, merchant_id, password_must_change,"
        " password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (username) DO NOTHING"
        f" RETURNING {_ACCOUNT_COLUMNS}",
        new.kind,
        new.username,
        password_hash,
        new.role,
        new.district,
        new.merchant_id,
        must_change,
    )


async def recent_password_hashes(conn: asyncpg.Connection, account_id: UUID, *, count: int) -> list[str]:
    """The account's current password hash and the ones before it, newest first, `count` in all."""
    rows = await conn.fetch(
        "(SELECT password_hash, 'infinity'::timestamptz AS set_at FROM accounts WHERE id = $1)"
        " UNION ALL (SELECT password_hash, set_at FROM password_history WHERE account_id = $1"
        "            ORDER BY set_at DESC LIMIT $2 - 1)"
        " ORDER BY set_at DESC",
        account_id,
        count,
    )
    return [r["password_hash"] for r in rows]


async def replace_account_password(
    conn: asyncpg.Connection, account_id: UUID, password_hash: str, *, must_change: bool, keep: int
) -> None:
    """A new password (not a rehash of the same one): the old hash goes to the history, of which the
    newest `keep` stay."""
    await conn.execute(
        "INSERT INTO password_history (account_id, password_hash) SELECT id, password_hash FROM accounts WHERE id = $1",
        account_id,
    )
    await conn.execute(
        "UPDATE accounts SET password_hash = $2, password_must_change = $3, password_changed_at = now() WHERE id = $1",
        account_id,
        password_hash,
        must_change,
    )
    await conn.execute(
        "DELETE FROM password_history WHERE account_id = $1 AND set_at NOT IN"
        " (SELECT set_at FROM password_history WHERE account_id = $1 ORDER BY set_at DESC LIMIT $2)",
        account_id,
        keep,
    )


async def list_admin_accounts(conn: asyncpg.Connection, *, after: Keyset | None, limit: int) -> list[asyncpg.Record]:
    after_at, after_id = after or (None, None)
    return await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE kind = 'admin'"
        " AND ($1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid))"
        " ORDER BY created_at, id LIMIT $3",
        after_at,
        after_id,
        limit,
    )


async def set_admin_role(conn: asyncpg.Connection, account_id: UUID, role: str, district: str | None) -> None:
    await conn.execute("UPDATE accounts SET role = $2, district = $3 WHERE id = $1", account_id, role, district)


async def get_account_by_username(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE username = $1", username)


async def get_account(conn: asyncpg.Connection, account_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = $1", account_id)


async def set_account_totp(conn: asyncpg.Connection, account_id: UUID, *, secret_enc: bytes, key_version: int) -> None:
    await conn.execute(
        "UPDATE accounts SET totp_secret_enc = $2, totp_key_version = $3, totp_last_step = NULL WHERE id = $1",
        account_id,
        secret_enc,
        key_version,
    )


async def record_login(conn: asyncpg.Connection, account_id: UUID, *, totp_step: int | None) -> bool:
    """Stamp a successful login; with TOTP, only if this step is newer than the last one used."""
    row = await conn.fetchval(
        "UPDATE accounts SET last_login_at = now(), totp_last_step = COALESCE($2, totp_last_step)"
        " WHERE id = $1 AND ($2::bigint IS NULL OR totp_last_step IS NULL OR totp_last_step < $2)"
        " RETURNING id",
        account_id,
        totp_step,
    )
    return row is not None


async def set_account_password(conn: asyncpg.Connection, account_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE accounts SET password_hash = $2 WHERE id = $1", account_id, password_hash)


async def set_account_disabled(conn: asyncpg.Connection, account_id: UUID, *, disabled: bool) -> bool:
    row = await conn.fetchval(
        "UPDATE accounts SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, now()) END"
        " WHERE id = $1 RETURNING id",
        account_id,
        disabled,
    )
    return row is not None


# --- refresh tokens ---------------------------------------------------------------------------


async def create_refresh_token(
    conn: asyncpg.Connection,
    *,
    token_hash: bytes,
    family_id: UUID,
    subject: UUID,
    principal: dict[str, Any],
    issued_at: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, family_id, subject, principal, issued_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        token_hash,
        family_id,
        subject,
        principal,
        issued_at,
        expires_at,
    )


async def lock_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT token_hash, family_id, subject, principal, issued_at, expires_at, rotated_at, revoked_at"
        " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def mark_refresh_token_rotated(conn: asyncpg.Connection, token_hash: bytes, at: datetime) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1", token_hash, at)


async def revoke_refresh_family(conn: asyncpg.Connection, family_id: UUID, at: datetime) -> int:
    result = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL", family_id, at
    )
    return int(result.split()[-1])


async def revoke_refresh_subject(conn: asyncpg.Connection, subject: UUID, at: datetime) -> list[UUID]:
    """Revoke every live refresh token of `subject`; the families (sessions) that ended."""
    rows = await conn.fetch(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE subject = $1 AND revoked_at IS NULL RETURNING family_id",
        subject,
        at,
    )
    return list({row["family_id"] for row in rows})


async def revoke_refresh_merchant_staff(conn: asyncpg.Connection, merchant_id: UUID, at: datetime) -> list[UUID]:
    """Revoke every live refresh token of the merchant's staff accounts; the families that ended."""
    rows = await conn.fetch(
        """
        UPDATE refresh_tokens SET revoked_at = $2
        WHERE revoked_at IS NULL
          AND subject IN (SELECT id FROM accounts WHERE kind = 'staff' AND merchant_id = $1)
        RETURNING family_id
        """,
        merchant_id,
        at,
    )
    return list({row["family_id"] for row in rows})


async def session_refused(conn: asyncpg.Connection, family_id: UUID) -> bool:
    """Whether a session (refresh family) has ended: revoked, or its account disabled.

    A family with no rows is not refused: every access token we sign names a family we stored,
    and rows are pruned only a day after the family's refresh tokens expired.
    """
    refused = await conn.fetchval(
        """
        SELECT bool_or(r.revoked_at IS NOT NULL OR a.disabled_at IS NOT NULL)
        FROM refresh_tokens r LEFT JOIN accounts a ON a.id = r.subject
        WHERE r.family_id = $1
        """,
        family_id,
    )
    return bool(refused)


async def get_refresh_family(conn: asyncpg.Connection, token_hash: bytes) -> UUID | None:
    return await conn.fetchval("SELECT family_id FROM refresh_tokens WHERE token_hash = $1", token_hash)


async def delete_expired_refresh_tokens(conn: asyncpg.Connection, *, expired_before: datetime, batch: int) -> int:
    """One batch of refresh tokens that expired before `expired_before`; how many went."""
    status = await conn.execute(
        """
        DELETE FROM refresh_tokens WHERE token_hash IN (
            SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2
        )
        """,
        expired_before, batch,
    )
    return int(status.split()[-1])


# --- login throttle (the PostgreSQL counter, used while Redis does not answer) -----------------


async def reserve_login_attempt(
    conn: asyncpg.Connection, *, counter: str, limit: int, window_seconds: int
) -> int | None:
    """Count one attempt if the counter is under `limit` in its window (a lapsed window starts
    again at 1); None when it is at the limit. One statement: the row lock serialises racers."""
    return await conn.fetchval(
        """
        INSERT INTO login_attempts AS a (counter, attempts, window_ends)
        VALUES ($1, 1, now() + make_interval(secs => $3))
        ON CONFLICT (counter) DO UPDATE SET
            attempts = CASE WHEN a.window_ends <= now() THEN 1 ELSE a.attempts + 1 END,
            window_ends = CASE WHEN a.window_ends <= now() THEN EXCLUDED.window_ends ELSE a.window_ends END
        WHERE a.window_ends <= now() OR a.attempts < $2
        RETURNING attempts
        """,
        counter, limit, window_seconds,
    )


async def login_window_left(conn: asyncpg.Connection, counter: str) -> int:
    """Whole seconds (at least 1) until the counter's window ends."""
    left = await conn.fetchval(
        "SELECT ceil(extract(epoch FROM window_ends - now()))::int FROM login_attempts WHERE counter = $1", counter
    )
    return max(left or 0, 1)


async def release_login_attempt(conn: asyncpg.Connection, counter: str) -> None:
    """Give one counted attempt back (never below zero, never into a window that has lapsed)."""
    await conn.execute(
        "UPDATE login_attempts SET attempts = attempts - 1"
        " WHERE counter = $1 AND attempts > 0 AND window_ends > now()",
        counter,
    )


async def clear_login_counter(conn: asyncpg.Connection, counter: str) -> None:
    await conn.execute("DELETE FROM login_attempts WHERE counter = $1", counter)


async def delete_lapsed_login_counters(conn: asyncpg.Connection) -> int:
    status = await conn.execute("DELETE FROM login_attempts WHERE window_ends < now()")
    return int(status.split()[-1])
