"""The audit archive end to end: a scripted day is recorded, checkpoints are signed, proofs hold,
`verify` passes; then each kind of tampering, done as a database superuser, is named.
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
import pytest

import archive
import identity
from archive import merkle
from archive.checkpoints import unb64, unb64url
from foundation.audit import leaf_hash, write_audit
from foundation.connections import init_connection
from tests.factories.people import VETERAN_ID
from tests.factories.world import OTHER_DISTRICT, VICTIM_DISTRICT, build_rating_world, login, reverse, visit
from tests.tokens import admin, auth_headers

PASSWORD = "correct horse battery staple"
PUDONG = VICTIM_DISTRICT


async def scripted_day(app, client, conn) -> dict:
    """Configuration, logins (one failed), scans, a reversal, a 差评 answered, a statement, two checkpoints."""
    city = auth_headers(app, admin("city"))
    world = await build_rating_world(client, app)
    await identity.create_account(conn, identity.NewAccount(kind="admin", username="city.ops", password=PASSWORD, role="city"))
    failed = await client.post("/v1/auth/staff", json={"username": "city.ops", "password": "wrong password!!"})
    assert failed.status_code == 401
    ok = await client.post("/v1/auth/staff", json={"username": "city.ops", "password": PASSWORD})
    assert ok.status_code == 200, ok.text
    visits = [await visit(client, app, world, VETERAN_ID) for _ in range(2)]
    await visit(client, app, world, VETERAN_ID, xuhui=True)
    await reverse(client, world, visits[0])
    first = await client.post("/v1/admin/audit/checkpoints", headers=city)
    assert first.status_code == 201, first.text
    rated = await client.post(
        f"/v1/me/redemptions/{visits[1]}/rating", json={"stars": 1, "comment": "工作人员张三态度差"},
        headers=await login(client, app, VETERAN_ID),
    )
    assert rated.status_code == 201, rated.text
    case_id = (await client.get("/v1/admin/ratings", headers=city)).json()["items"][0]["id"]
    replied = await client.post(f"/v1/admin/ratings/{case_id}/reply", json={"reply": "已约谈场馆"}, headers=city)
    assert replied.status_code == 200, replied.text
    merchant_id = (await client.get("/v1/admin/merchants", headers=city)).json()["items"][0]["id"]
    month = (await conn.fetchval("SELECT max(service_day) FROM redemptions")).strftime("%Y-%m")
    statement = await client.get(f"/v1/admin/merchants/{merchant_id}/statements/{month}", headers=city)
    assert statement.status_code == 200, statement.text
    second = await client.post("/v1/admin/audit/checkpoints", headers=city)
    assert second.status_code == 201, second.text
    jwks = (await client.get("/.well-known/jwks.json")).json()
    return {"first": first.json(), "second": second.json(), "jwks": jwks, "city": city}


@pytest.fixture
async def day(app, client, conn):
    return await scripted_day(app, client, conn)


async def test_a_day_is_recorded_without_personal_data_and_verifies(client, conn, day):
    rows = await conn.fetch("SELECT * FROM audit_log ORDER BY seq")
    actions = {r["action"] for r in rows}
    for wanted in ("merchant.create", "venue.create", "benefit.create", "device.provision", "account.create",
                   "auth.login_failed", "auth.login", "redemption.reverse", "rating_case.reply", "statement.download"):
        assert wanted in actions, (wanted, actions)
    assert [r["seq"] for r in rows] == list(range(len(rows)))  # gapless
    assert all(r["leaf_hash"] == leaf_hash(archive.entry_of(r)) for r in rows)
    assert all(r["request_id"] for r in rows if r["actor_kind"] != "system")  # every HTTP change names its request
    failed = next(r for r in rows if r["action"] == "auth.login_failed")
    assert failed["detail"] == {"reason": "invalid-credentials"}
    dump = msgspec.json.encode([dict(r) | {"leaf_hash": None, "at": None} for r in rows]).decode()
    assert not re.search(r"\d{17}[\dXx]", dump)           # no ID number
    assert "张三" not in dump and "city.ops" not in dump     # no comment text, no username tried
    assert "wrong password" not in dump

    report = await archive.verify_database(conn, day["jwks"])
    assert report.ok, report.finding
    assert report.entries == len(rows) and report.checkpoints == 2


async def test_checkpoints_are_signed_and_proofs_verify(client, conn, day):
    city = day["city"]
    second = day["second"]
    key = next(k for k in day["jwks"]["keys"] if k["kid"] == second["kid"])
    assert identity.verify_signature(second["alg"], key, second["note"].encode(), unb64url(second["signature"]))
    assert second["note"].splitlines()[:3] == ["cjmf/audit/v1", str(second["tree_size"]), second["root_hash"]]
    assert "\n\n\u2014 cjmf/audit/v1 " in second["signed_note"]
    root = unb64(second["root_hash"])
    for seq in (0, second["tree_size"] // 2, second["tree_size"] - 1):
        proof = await client.get("/v1/admin/audit/proofs/inclusion", params={"seq": seq}, headers=city)
        assert proof.status_code == 200, proof.text
        body = proof.json()
        assert body["tree_size"] == second["tree_size"]
        merkle.verify_inclusion(seq, body["tree_size"], unb64(body["leaf_hash"]), [unb64(p) for p in body["proof"]], root)
    first = day["first"]
    consistency = await client.get(
        "/v1/admin/audit/proofs/consistency", params={"first": first["tree_size"], "second": second["tree_size"]}, headers=city
    )
    assert consistency.status_code == 200, consistency.text
    merkle.verify_consistency(
        first["tree_size"], second["tree_size"], unb64(first["root_hash"]), root,
        [unb64(p) for p in consistency.json()["proof"]],
    )
    # The proofs read above are archived (audit.read, issue 17), so the next checkpoint is a new
    # one; cutting again with nothing new gives that same one.
    third = await client.post("/v1/admin/audit/checkpoints", headers=city)
    assert third.status_code == 201 and third.json()["tree_size"] > second["tree_size"], third.text
    again = await client.post("/v1/admin/audit/checkpoints", headers=city)   # nothing new: the same one
    assert again.json() == third.json()
    missing = await client.get("/v1/admin/audit/proofs/consistency", params={"first": 1, "second": second["tree_size"]}, headers=city)
    assert missing.status_code == 404 and missing.json()["type"] == "urn:chongjun:problem:checkpoint-not-found"


async def test_the_status_checks_the_latest_signature_and_its_consistency_with_the_previous(app, client, conn):
    auditor = auth_headers(app, admin("auditor"))
    before = await client.get("/v1/admin/audit/status", headers=auditor)
    assert before.status_code == 200, before.text
    assert before.json()["checkpoint"] is None and before.json()["signature_valid"] is None
    day = await scripted_day(app, client, conn)
    status = (await client.get("/v1/admin/audit/status", headers=auditor)).json()
    assert status["checkpoint"] == day["second"] and status["previous"] == day["first"]
    assert (status["signature_valid"], status["previous_signature_valid"], status["consistent"]) == (True, True, True)
    assert status["problem"] is None
    assert status["entries"] >= day["second"]["tree_size"]
    district = await client.get("/v1/admin/audit/status", headers=auth_headers(app, admin("district", district=PUDONG)))
    assert district.status_code == 200
    veteran = await client.get("/v1/admin/audit/status", headers=await login(client, app, VETERAN_ID))
    assert veteran.status_code in (401, 403)

    # A recorded leaf hash between the two checkpoints rewritten: the proof no longer joins the two
    # roots. (Not one below the first: when the first tree's size is a power of two, RFC 9162's
    # proof takes that whole subtree from the first root and reads none of its leaves.)
    await _as_superuser(conn, "UPDATE audit_log SET leaf_hash = $1 WHERE seq = $2", b"\x07" * 32, day["first"]["tree_size"])
    broken = (await client.get("/v1/admin/audit/status", headers=auditor)).json()
    assert broken["signature_valid"] is True and broken["consistent"] is False
    assert f"does not extend checkpoint {day['first']['tree_size']}" in broken["problem"]

    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_checkpoints SET signature = $1 WHERE tree_size = $2", b"\x00" * 64, day["second"]["tree_size"])
        await conn.execute("ALTER TABLE audit_checkpoints ENABLE TRIGGER USER")
    forged = (await client.get("/v1/admin/audit/status", headers=auditor)).json()
    assert forged["signature_valid"] is False and forged["previous_signature_valid"] is True
    assert "the signature does not verify" in forged["problem"]


async def test_district_admins_read_only_their_district(app, client, conn, day):
    pudong = auth_headers(app, admin("district", district=PUDONG))
    seen, cursor = [], None
    while True:
        page = await client.get("/v1/admin/audit", params={"limit": 3, **({"cursor": cursor} if cursor else {})}, headers=pudong)
        assert page.status_code == 200, page.text
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    expected = await conn.fetch("SELECT seq FROM audit_log WHERE district = $1 ORDER BY seq DESC", PUDONG)
    assert [e["seq"] for e in seen] == [r["seq"] for r in expected] and seen
    assert {e["district"] for e in seen} == {PUDONG}
    other = await client.get("/v1/admin/audit", params={"district": OTHER_DISTRICT}, headers=pudong)
    assert other.json()["items"] == []
    foreign = await conn.fetchval("SELECT seq FROM audit_log WHERE district = $1 LIMIT 1", OTHER_DISTRICT)
    assert (await client.get(f"/v1/admin/audit/entries/{foreign}", headers=pudong)).status_code == 404
    assert (await client.get("/v1/admin/audit/proofs/inclusion", params={"seq": foreign}, headers=pudong)).status_code == 404
    auditor = auth_headers(app, admin("auditor"))
    everything = await client.get("/v1/admin/audit", params={"limit": 100}, headers=auditor)
    # Every entry but the audit duty's own (its reads, archived too: the security duty reads those).
    assert len(everything.json()["items"]) == await conn.fetchval(
        "SELECT count(*) FROM audit_log WHERE NOT (actor_kind = 'admin' AND actor_role = 'auditor')"
    )
    assert (await client.post("/v1/admin/audit/checkpoints", headers=auditor)).status_code == 403
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    same_day = await client.get("/v1/admin/audit", params={"from": str(today), "to": str(today), "limit": 100}, headers=auditor)
    assert len(same_day.json()["items"]) == len(everything.json()["items"])
    later = await client.get("/v1/admin/audit", params={"from": str(today + timedelta(days=1))}, headers=auditor)
    assert later.json()["items"] == []
    devices = await client.get("/v1/admin/audit", params={"action": "device.", "limit": 100}, headers=auditor)
    assert {e["action"] for e in devices.json()["items"]} == {"device.provision"}


async def _as_superuser(conn: asyncpg.Connection, sql: str, *args) -> None:
    """What an attacker with the database's superuser can do: switch the triggers off and rewrite."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


async def _finding(conn, day):
    report = await archive.verify_database(conn, day["jwks"])
    assert not report.ok
    return report.finding


async def test_an_edited_entry_is_named(conn, day):
    await _as_superuser(conn, "UPDATE audit_log SET detail = detail || '{\"venues\": 9}' WHERE seq = 5")
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("edited", 5), finding


async def test_a_deleted_entry_is_named(conn, day):
    await _as_superuser(conn, "DELETE FROM audit_log WHERE seq = 7")
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("deleted", 7), finding


async def test_swapped_entries_are_named(conn, day):
    await _as_superuser(
        conn,
        "UPDATE audit_log SET seq = CASE seq WHEN 3 THEN -3 ELSE seq END WHERE seq IN (3, 4);"
        " UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3",
    )
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("reordered", 3), finding


async def test_an_inserted_entry_is_named(conn, day):
    size = await conn.fetchval("SELECT next_seq FROM audit_head")
    await conn.execute(
        "INSERT INTO audit_log (actor_kind, actor_id, action, object_kind, object_id) VALUES ('admin', 'x', 'benefit.update', 'benefit', 'y')"
    )
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("inserted", size), finding


async def test_a_rewrite_that_recomputes_the_hashes_is_caught_by_the_checkpoint(conn, day):
    row = await conn.fetchrow("SELECT * FROM audit_log WHERE seq = 2")
    forged = msgspec.structs.replace(archive.entry_of(row), detail={"forged": True})
    await _as_superuser(conn, "UPDATE audit_log SET detail = $1, leaf_hash = $2 WHERE seq = 2", {"forged": True}, leaf_hash(forged))
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("checkpoint-root", 0), finding   # somewhere before the first checkpoint


async def test_a_truncated_tail_is_caught_by_the_checkpoint(conn, day):
    size = day["second"]["tree_size"]
    await _as_superuser(conn, "DELETE FROM audit_log WHERE seq >= $1", size - 3)
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("checkpoint-size", size - 3), finding


async def test_a_forged_checkpoint_signature_is_named(conn, day):
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER")
        await conn.execute("UPDATE audit_checkpoints SET signature = $1 WHERE tree_size = $2", b"\x00" * 64, day["first"]["tree_size"])
        await conn.execute("ALTER TABLE audit_checkpoints ENABLE TRIGGER USER")
    finding = await _finding(conn, day)
    assert (finding.kind, finding.seq) == ("checkpoint-signature", day["first"]["tree_size"]), finding


async def test_the_export_verifies_offline_and_its_tampering_is_named(conn, day):
    out = io.BytesIO()
    async with conn.transaction(isolation="repeatable_read"):
        entries, checkpoints = await archive.export_archive(conn, day["jwks"], out.write)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + entries + checkpoints
    report = archive.verify_export(lines, day["jwks"])
    assert report.ok and report.entries == entries and report.checkpoints == 2, report
    edited = [line.replace(b'"action":"redemption.reverse"', b'"action":"redemption.reverze"') for line in lines]
    finding = archive.verify_export(edited, day["jwks"]).finding
    seq = await conn.fetchval("SELECT seq FROM audit_log WHERE action = 'redemption.reverse'")
    assert (finding.kind, finding.seq) == ("edited", seq)
    stranger = {"keys": [{**k, "kid": "someone-else"} for k in day["jwks"]["keys"]]}
    assert archive.verify_export(lines, stranger).finding.kind == "checkpoint-signature"


async def test_concurrent_writers_get_gapless_numbers_and_rolled_back_ones_leave_no_hole(settings, conn):
    async def writer(n: int) -> None:
        c = await asyncpg.connect(settings.database_url)
        try:
            await init_connection(c)
            for i in range(10):
                tx = c.transaction()
                await tx.start()
                await write_audit(c, actor_kind="system", actor_id=f"w{n}", action="test.write", object_kind="t", object_id=str(i))
                if i % 3 == 0:
                    await tx.rollback()
                else:
                    await tx.commit()
        finally:
            await c.close()

    await asyncio.gather(*(writer(n) for n in range(6)))
    seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(6 * 6))   # 6 of each writer's 10 committed, no holes
    report = await archive.verify_database(conn, {"keys": []})
    assert report.ok and report.entries == 36, report
