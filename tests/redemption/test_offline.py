"""Gates that keep working offline (issue 15 §4): the signed bundle, and POST /v1/scans/offline
reconciling what gates decided without the network: recorded once, conflicts kept and shown,
invalid items rejected, a re-upload answered the same with no new rows, exactly once under many
simultaneous uploads from two devices."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import msgspec
import pytest

import identity
from benefits import redemption
from benefits.redemption import OFFLINE_BUNDLE_TYPE, OfflineUpload
from identity.credentials import jwks_lookup
from identity.signing import verify_typed_jws
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import UNCAPPED, build_world, device_headers, suishen
from tests.support import both_profiles
from tests.tokens import admin, auth_headers, staff


@pytest.fixture
async def world(app, client):
    return await build_world(client, app)


async def _person(settings, conn, id_number: str) -> uuid.UUID:
    return await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", identity.pii_vault(settings).index_of(id_number))


async def _code(app, redis, person_id, *, now: float | None = None) -> str:
    return (await identity.issue_code(redis, person_id, keyring=app.state.keyring, now=now)).code


def _item(world, code, *, local_id=None, decided_at=None, **extra) -> dict:
    at = decided_at or datetime.now(timezone.utc)
    return {"local_id": local_id or uuid.uuid4().hex, "code": code, "venue_id": world.venue_id,
            "decided_at": at.isoformat(), **extra}


async def _upload(client, headers, items):
    return await client.post("/v1/scans/offline", json={"scans": items}, headers=headers)


async def _counts(conn):
    return (await conn.fetchval("SELECT count(*) FROM redemptions"), await conn.fetchval("SELECT count(*) FROM offline_scans"),
            await conn.fetchval("SELECT count(*) FROM outbox WHERE type = 'redemption.accepted'"))


@both_profiles
async def test_the_bundle_is_signed_and_holds_keys_status_list_benefits_and_budget(app, client, settings, world):
    got = await client.get("/v1/scans/offline-bundle", headers=world.device_headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/jose")
    token = got.text
    header = jwt.get_unverified_header(token)
    assert header["typ"] == OFFLINE_BUNDLE_TYPE
    # Checked against the published JWKS as a third party would, under either crypto profile
    # (PyJWK alone knows no SM2 key).
    published = (await client.get("/.well-known/jwks.json")).json()
    bundle = verify_typed_jws(token, typ=OFFLINE_BUNDLE_TYPE, key_for=jwks_lookup(published))
    assert bundle["venue_id"] == world.venue_id and bundle["device_id"] == world.device_id
    assert bundle["exp"] - bundle["iat"] == settings.offline_bundle_seconds
    assert bundle["budget"] == {"accepts_per_hour": settings.offline_accepts_per_hour,
                                "accepts_per_person_day": settings.offline_accepts_per_person_day,
                                "valid_seconds": settings.offline_bundle_seconds,
                                "upload_within_seconds": settings.offline_upload_seconds}
    # The code keys are the key ring's public keys (no private half), so a gate verifies 崇军码 itself.
    kids = {k["kid"] for k in bundle["code_keys"]["keys"]}
    assert app.state.keyring.active.kid in kids and not any("d" in k for k in bundle["code_keys"]["keys"])
    assert jwt.get_unverified_header(bundle["status_list"])["typ"] == "statuslist+jwt"
    [benefit] = bundle["benefits"]
    assert benefit["id"] == world.benefit_id and benefit["code"] == "C8" and benefit["caps"] == [{"period": "day", "max": 1}]
    assert len(benefit["rules_digest"]) == 64 and len(bundle["rules_digest"]) == 64
    # The digest follows the rules: a new version of the benefit changes it.
    city = auth_headers(app, admin("city"))
    changed = await client.patch(f"/v1/admin/benefits/{world.benefit_id}", json={"companions": {"max": 2}}, headers=city)
    assert changed.status_code == 200, changed.text
    again = verify_typed_jws((await client.get("/v1/scans/offline-bundle", headers=world.device_headers)).text,
                             typ=OFFLINE_BUNDLE_TYPE, key_for=jwks_lookup(published))
    assert again["benefits"][0]["rules_digest"] != benefit["rules_digest"]
    assert again["benefits"][0]["companions_max"] == 2
    # Only a device gets a bundle: staff, veterans and anonymous callers do not.
    merchant = auth_headers(app, staff(uuid.UUID(world.merchant_id)))
    assert (await client.get("/v1/scans/offline-bundle", headers=merchant)).status_code == 403
    assert (await client.get("/v1/scans/offline-bundle")).status_code == 401


async def test_two_devices_offline_accept_the_same_code_one_row_one_conflict(app, client, conn, redis, settings, world):
    city = auth_headers(app, admin("city"))
    second, _ = await device_headers(client, city, world.venue_id)
    person = await _person(settings, conn, VETERAN_ID)
    code = await _code(app, redis, person)
    a, b = _item(world, code, local_id="gate-a-1"), _item(world, code, local_id="gate-b-1")
    one, two = await asyncio.gather(_upload(client, world.device_headers, [a]), _upload(client, second, [b]))
    assert one.status_code == two.status_code == 200, (one.text, two.text)
    outcomes = sorted([one.json()["items"][0]["outcome"], two.json()["items"][0]["outcome"]])
    assert outcomes == ["conflict", "recorded"]
    conflict = next(r.json()["items"][0] for r in (one, two) if r.json()["items"][0]["outcome"] == "conflict")
    recorded = next(r.json()["items"][0] for r in (one, two) if r.json()["items"][0]["outcome"] == "recorded")
    assert conflict["reason"] == "replayed" and "redemption_id" not in conflict
    rows = await conn.fetch("SELECT id, decided_at, device_id, service_day FROM redemptions WHERE person_id = $1", person)
    assert len(rows) == 1 and str(rows[0]["id"]) == recorded["redemption_id"]
    assert rows[0]["decided_at"] is not None  # an offline redemption carries its decision time
    assert await conn.fetchval("SELECT count(*) FROM offline_scans WHERE outcome = 'conflict' AND reason = 'replayed'") == 1
    # The merchant sees the conflict beside the redemption, and the city's stats count it.
    merchant = auth_headers(app, staff(uuid.UUID(world.merchant_id)))
    listed = (await client.get("/v1/merchant/redemptions?result=conflict", headers=merchant)).json()["items"]
    assert [(e["result"], e["reason"]) for e in listed] == [("conflict", "replayed")]
    assert listed[0]["decided_at"] is not None and listed[0]["value_fen"] == 0
    accepted = (await client.get("/v1/merchant/redemptions?result=accepted", headers=merchant)).json()["items"]
    assert [e["id"] for e in accepted] == [recorded["redemption_id"]] and accepted[0]["decided_at"] is not None
    today = rows[0]["service_day"].isoformat()
    stats = await client.get(f"/v1/admin/stats?date_from={today}&date_to={today}", headers=city)
    assert stats.status_code == 200, stats.text
    assert stats.json()["offline"] == {"recorded": 1, "conflicts": 1, "rejected": 0,
                                       "conflict_reasons": [{"reason": "replayed", "count": 1}], "rejected_reasons": []}


async def test_a_person_over_the_daily_cap_offline_is_a_conflict(app, client, conn, redis, settings, world):
    city = auth_headers(app, admin("city"))
    second, _ = await device_headers(client, city, world.venue_id)
    person = await _person(settings, conn, VETERAN_ID)
    first = await _upload(client, world.device_headers, [_item(world, await _code(app, redis, person))])
    assert first.json()["items"][0]["outcome"] == "recorded", first.text
    # Another gate, offline as well, let the same holder in again the same day with a fresh code.
    over = await _upload(client, second, [_item(world, await _code(app, redis, person))])
    assert over.status_code == 200, over.text
    assert over.json()["items"][0] | {"local_id": None} == {
        "local_id": None, "outcome": "conflict", "reason": "quota_exhausted", "message": "本期优待次数已用完",
        "message_en": "Quota for this period used up"}
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE person_id = $1", person) == 1
    assert await conn.fetchval("SELECT used FROM quota_usage WHERE person_id = $1", person) == 1


async def test_the_same_batch_re_sent_gives_the_same_results_and_no_new_rows(app, client, conn, redis, settings, world):
    veteran, disabled = await _person(settings, conn, VETERAN_ID), await _person(settings, conn, DISABLED_ID)
    code = await _code(app, redis, veteran)
    batch = [
        _item(world, code), _item(world, code),  # the same code twice on one gate (a screenshot)
        _item(world, await _code(app, redis, disabled), companions=1),
        _item(world, "CJ1:forged.forged.forged"),
    ]
    first = await _upload(client, world.device_headers, batch)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert [i["outcome"] for i in answer["items"]] == ["recorded", "conflict", "recorded", "rejected"]
    assert [i["reason"] for i in answer["items"]] == ["accepted", "replayed", "accepted", "invalid_code"]
    assert (answer["recorded"], answer["conflicts"], answer["rejected"]) == (2, 1, 1)
    before = await _counts(conn)
    assert before == (2, 4, 2)
    # Re-sent: once, then many times at once (a gate that retried on a flaky network).
    again = await _upload(client, world.device_headers, batch)
    assert again.json() == answer
    many = await asyncio.gather(*(_upload(client, world.device_headers, batch) for _ in range(8)))
    assert all(r.status_code == 200 and r.json() == answer for r in many)
    assert await _counts(conn) == before
    # A local_id sent again with other content is refused and changes nothing.
    other = {**batch[0], "companions": 1}
    reused = (await _upload(client, world.device_headers, [other])).json()["items"][0]
    assert (reused["outcome"], reused["reason"]) == ("rejected", "local_id_reused")
    assert await _counts(conn) == before


async def test_many_simultaneous_uploads_from_two_devices_record_each_code_once(app, client, conn, redis, settings, world):
    city = auth_headers(app, admin("city"))
    uncapped = await client.post("/v1/admin/benefits", json={**UNCAPPED, "code": "C11", "venue_ids": [world.venue_id]},
                                 headers=city)
    assert uncapped.status_code == 201, uncapped.text
    benefit_id = uncapped.json()["benefit_id"]
    second, _ = await device_headers(client, city, world.venue_id)
    # Three visits of each holder per gate: a budget that allows them, so only single use decides.
    app.state.settings = msgspec.structs.replace(app.state.settings, offline_accepts_per_person_day=3)
    people = [await _person(settings, conn, n) for n in (VETERAN_ID, DISABLED_ID)]
    codes = [await _code(app, redis, people[i % 2]) for i in range(6)]
    # Both gates saw all six codes; each uploads its batch four times, all at once.
    batches = {
        name: [_item(world, c, local_id=f"{name}-{i}", benefit_id=benefit_id) for i, c in enumerate(codes)]
        for name in ("a", "b")
    }
    requests = [_upload(client, world.device_headers, batches["a"]), *(_upload(client, second, batches["b"]) for _ in range(4)),
                *(_upload(client, world.device_headers, batches["a"]) for _ in range(3))]
    answers = await asyncio.gather(*requests)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    assert await conn.fetchval("SELECT count(*) FROM redemptions WHERE benefit_id = $1", uuid.UUID(benefit_id)) == 6
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes") == 6
    assert await conn.fetchval("SELECT count(*) FROM offline_scans") == 12  # one row per (device, local_id)
    by_device = [a.json() for a in answers]
    for body in by_device:
        assert body["recorded"] + body["conflicts"] == 6 and body["rejected"] == 0
    # Each gate's repeats agree with each other, and across the two gates every code is recorded once.
    firsts = {}
    for body in by_device:
        key = body["items"][0]["local_id"][0]
        firsts.setdefault(key, body)
        assert body == firsts[key]
    recorded = [i["local_id"][2:] for body in firsts.values() for i in body["items"] if i["outcome"] == "recorded"]
    assert sorted(recorded) == [str(i) for i in range(6)]


async def test_invalid_items_are_rejected_with_their_reason(app, client, conn, redis, settings, world):
    person = await _person(settings, conn, VETERAN_ID)
    suspended = await _person(settings, conn, DISABLED_ID)
    await conn.execute("UPDATE people SET card_status = 'SUSPENDED' WHERE id = $1", suspended)  # after the gate decided
    long_ago = time.time() - 600
    items = [
        _item(world, await _code(app, redis, person, now=long_ago)),  # expired when the gate decided
        _item(world, await _code(app, redis, person), decided_at=datetime.now(timezone.utc) + timedelta(hours=1)),
        _item(world, await _code(app, redis, person), decided_at=datetime.now(timezone.utc)
              - timedelta(seconds=settings.offline_upload_seconds + 60)),
        {**_item(world, await _code(app, redis, person)), "decided_at": "9999-12-31T23:59:59+00:00"},
        {**_item(world, await _code(app, redis, person)), "decided_at": "0001-01-01T00:00:00+14:00"},
        _item(world, suishen(app, VETERAN_ID)),  # a 随申码 cannot be checked offline
        {**_item(world, await _code(app, redis, person)), "venue_id": world.other_venue_id},
        _item(world, await _code(app, redis, suspended)),
        _item(world, await _code(app, redis, person), companions=3),
    ]
    answer = await _upload(client, world.device_headers, items)
    assert answer.status_code == 200, answer.text
    assert [(i["outcome"], i["reason"]) for i in answer.json()["items"]] == [
        ("rejected", "expired"), ("rejected", "bad_decision_time"), ("rejected", "bad_decision_time"),
        ("rejected", "bad_decision_time"), ("rejected", "bad_decision_time"), ("rejected", "offline_code_unsupported"), ("rejected", "venue_not_allowed"), ("rejected", "card_suspended"),
        ("rejected", "too_many_companions"),
    ]
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 0
    assert await conn.fetchval("SELECT count(*) FROM offline_scans WHERE outcome = 'rejected'") == 9
    # A code that was still valid at its decision time is recorded even though it expired since.
    decided = datetime.now(timezone.utc) - timedelta(seconds=120)
    late = _item(world, await _code(app, redis, person, now=decided.timestamp() - 10), decided_at=decided)
    recorded = (await _upload(client, world.device_headers, [late])).json()["items"][0]
    assert (recorded["outcome"], recorded["reason"]) == ("recorded", "accepted")
    row = await conn.fetchrow("SELECT decided_at, at FROM redemptions WHERE id = $1::uuid", recorded["redemption_id"])
    assert abs((row["decided_at"] - decided).total_seconds()) < 0.001 and row["at"] > row["decided_at"]


async def test_the_offline_budget_holds_on_upload(app, client, conn, redis, settings, world):
    """A gate (or a clone of it) past its budget: the extra accepts are conflicts, not ledger rows."""
    city = auth_headers(app, admin("city"))
    uncapped = await client.post("/v1/admin/benefits", json={**UNCAPPED, "code": "C12", "venue_ids": [world.venue_id]},
                                 headers=city)
    benefit_id = uncapped.json()["benefit_id"]
    person = await _person(settings, conn, VETERAN_ID)
    per_person = settings.offline_accepts_per_person_day
    items = [_item(world, await _code(app, redis, person), benefit_id=benefit_id) for _ in range(per_person + 1)]
    answer = (await _upload(client, world.device_headers, items)).json()
    assert [i["reason"] for i in answer["items"]] == ["accepted"] * per_person + ["offline_budget_exceeded"]
    assert answer["items"][-1]["outcome"] == "conflict"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == per_person


async def test_bad_uploads_are_problems_and_write_nothing(app, client, conn, redis, settings, world):
    person = await _person(settings, conn, VETERAN_ID)
    code = await _code(app, redis, person)
    good = _item(world, code)
    cases = [
        {"scans": []},
        {"scans": [_item(world, code) for _ in range(201)]},
        {"scans": [good, {**_item(world, code), "local_id": good["local_id"]}]},
        {"scans": [{**good, "decided_at": "2026-12-01T10:00:00"}]},  # no time zone
        {"scans": [{**good, "local_id": "has spaces"}]},
        {"scans": [{**good, "extra": 1}]},
        {"scans": [{k: v for k, v in good.items() if k != "code"}]},
        {"scans": "nope"},
    ]
    for body in cases:
        answer = await client.post("/v1/scans/offline", json=body, headers=world.device_headers)
        assert 400 <= answer.status_code < 500, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"]
    duplicate = await client.post("/v1/scans/offline", json=cases[2], headers=world.device_headers)
    assert duplicate.status_code == 422 and duplicate.json()["type"].endswith("duplicate-local-id")
    broken = await client.post("/v1/scans/offline", content=b"{not json", headers={**world.device_headers,
                                                                                   "content-type": "application/json"})
    assert broken.status_code == 400
    merchant = auth_headers(app, staff(uuid.UUID(world.merchant_id)))
    assert (await client.post("/v1/scans/offline", json={"scans": [good]}, headers=merchant)).status_code == 403
    assert await _counts(conn) == (0, 0, 0)


async def test_an_upload_reads_the_venue_offer_once_not_once_an_item(app, conn, redis, settings, world):
    """Up to 200 items share one venue: its benefit list is one read per upload (each item's ledger
    statement still re-checks the version it was decided under)."""
    people = [await _person(settings, conn, id_number) for id_number in (VETERAN_ID, DISABLED_ID)]
    items = [_item(world, await _code(app, redis, person)) for person in people for _ in range(3)]
    upload = msgspec.convert({"scans": items}, OfflineUpload, strict=False)
    device = identity.Principal(kind="device", subject=uuid.UUID(world.device_id), merchant_id=uuid.UUID(world.merchant_id),
                                venue_id=uuid.UUID(world.venue_id), secret_generation=1)
    statements: list[str] = []

    def log(record) -> None:
        statements.append(record.query)

    conn.add_query_logger(log)
    try:
        results = await redemption.reconcile(conn, redis, device, upload, keyring=app.state.keyring, settings=settings)
    finally:
        for _ in range(3):
            await asyncio.sleep(0)  # asyncpg calls query loggers soon after the query
        conn.remove_query_logger(log)
    assert (results.recorded, results.rejected) == (2, 0), results  # one per person: the daily cap
    assert sum("FROM venue_benefits" in s for s in statements) == 1, statements
