"""电子印章 that outlives its key: versioned seal keys, statements archived once, offline verify."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import subprocess
import sys
from datetime import date

import msgspec
import pytest

import merchants
from benefits.redemption.seal import explain_sealed
from tests import tokens
from tests.factories.world import make_merchant, make_venue
from tests.merchants.test_reports import T1, redeem


@pytest.fixture
def settings(settings, tmp_path):
    """A private secrets directory: these tests rotate the seal key and delete a version's file."""
    return msgspec.structs.replace(settings, secrets_dir=tmp_path / "secrets")


def _staff_headers(app, merchant_id):
    return tokens.auth_headers(app, tokens.staff(merchant_id))


async def _statement(client, headers, month):
    answer = await client.get(f"/v1/merchant/statements/{month}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


async def test_a_statement_sealed_before_a_rotation_verifies_after_it_and_is_served_from_the_archive(client, app, conn, settings, tmp_path):
    mine = await make_merchant(conn)
    venue = await make_venue(conn, mine.id)
    await redeem(conn, venue, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    headers = _staff_headers(app, mine.id)

    before = await _statement(client, headers, "2026-10")
    old = before.json()
    old_kid = old["seal"]["kid"]
    assert old_kid == merchants.seal_key(settings).kid
    again = await _statement(client, headers, "2026-10")
    assert again.content == before.content  # archived: same bytes, same issued_at, same seal

    rotated = merchants.rotate_seal_key(settings)
    assert rotated.kid != old_kid and merchants.seal_key(settings).kid == rotated.kid
    jwks = (await client.get("/.well-known/jwks.json")).json()
    kids = {k["kid"] for k in jwks["keys"]}
    assert {old_kid, rotated.kid} <= kids

    # The old statement is still the archived one, sealed by the old key, and verifies with today's JWKS.
    after = await _statement(client, headers, "2026-10")
    assert after.content == before.content
    assert explain_sealed(after.json(), jwks).ok
    # A statement first asked for after the rotation is sealed by the new key.
    await redeem(conn, venue, T1, "T1", day=date(2026, 11, 5), value_fen=500)
    november = (await _statement(client, headers, "2026-11")).json()
    assert november["seal"]["kid"] == rotated.kid and explain_sealed(november, jwks).ok

    # A changed content (one more redemption in October) is a new revision, sealed by the new key.
    await redeem(conn, venue, T1, "T1", day=date(2026, 10, 6), value_fen=3000)
    revised = (await _statement(client, headers, "2026-10")).json()
    assert revised["seal"]["kid"] == rotated.kid and revised["statement"]["net_value_fen"] == 6000
    rows = await conn.fetch("SELECT revision, kid, digest, document FROM sealed_statements WHERE month = '2026-10' ORDER BY revision")
    assert [(r["revision"], r["kid"]) for r in rows] == [(1, old_kid), (2, rotated.kid)]
    assert rows[0]["digest"] == hashlib.sha256(rows[0]["document"]).hexdigest()
    assert msgspec.json.decode(rows[0]["document"]) == old

    # Every seal is in the audit archive with the document's digest.
    audit = await conn.fetch("SELECT object_id, detail FROM audit_log WHERE action = 'statement.seal' ORDER BY at, id")
    assert [a["detail"]["sha256"] for a in audit if a["detail"]["month"] == "2026-10"] == [r["digest"] for r in rows]

    # The old key's secret file gone: its public half is still published from PostgreSQL.
    (settings.resolved_secrets_dir / merchants.SEAL_SECRET).unlink()
    still = (await client.get("/.well-known/jwks.json")).json()
    assert old_kid in {k["kid"] for k in still["keys"]} and explain_sealed(old, still).ok

    # `chongjun seal verify` offline: VALID, then an explained failure for one changed figure.
    (tmp_path / "jwks.json").write_text(json.dumps(still))
    (tmp_path / "statement.json").write_bytes(before.content)
    forged = copy.deepcopy(old)
    forged["statement"]["net_value_fen"] += 1
    (tmp_path / "forged.json").write_text(json.dumps(forged, ensure_ascii=False))
    run = [sys.executable, "-m", "chongjun.cli", "seal", "verify"]
    good = subprocess.run([*run, str(tmp_path / "statement.json"), "--jwks", str(tmp_path / "jwks.json")],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("VALID") and old_kid in good.stdout, good.stdout + good.stderr
    bad = subprocess.run([*run, str(tmp_path / "forged.json"), "--jwks", str(tmp_path / "jwks.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stdout.startswith("REFUSED signature-mismatch"), bad.stdout + bad.stderr
    (tmp_path / "empty.json").write_text('{"keys": []}')
    unknown = subprocess.run([*run, str(tmp_path / "statement.json"), "--jwks", str(tmp_path / "empty.json")],
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and unknown.stdout.startswith("REFUSED unknown-key"), unknown.stdout


async def test_concurrent_first_requests_seal_one_archived_statement(client, app, conn):
    mine = await make_merchant(conn)
    venue = await make_venue(conn, mine.id)
    await redeem(conn, venue, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    headers = _staff_headers(app, mine.id)
    answers = await asyncio.gather(*(client.get("/v1/merchant/statements/2026-10", headers=headers) for _ in range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert await conn.fetchval("SELECT count(*) FROM sealed_statements") == 1
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'statement.seal'") == 1


async def test_the_archive_is_append_only(client, app, conn):
    mine = await make_merchant(conn)
    await make_venue(conn, mine.id)
    await _statement(client, _staff_headers(app, mine.id), "2026-10")
    for sql in ("UPDATE sealed_statements SET digest = 'x'", "DELETE FROM sealed_statements", "DELETE FROM seal_keys"):
        try:
            await conn.execute(sql)
        except Exception as exc:  # asyncpg raises the trigger's insufficient_privilege
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{sql} was allowed")
