"""docs/exchange.md is the receiver's contract: every event the app writes validates against the
schema published there, every event type has one, and a receiver can rebuild the ledger."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

import jsonschema_rs
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange import Pseudonyms
from foundation.outbox import EVENT_TYPES
from identity.keys import _public_jwk
from tests.exchange.test_relay import drain, make_relay
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import build_rating_world, device_headers, reverse, suishen, visit
from tests.tokens import admin, auth_headers

DOC = Path(__file__).resolve().parents[2] / "docs" / "exchange.md"


def published_schemas() -> dict[str, dict]:
    blocks = re.findall(r"```json schema=([a-z_.]+)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return {name: msgspec.json.decode(body) for name, body in blocks}


def test_every_event_type_has_a_schema():
    schemas = published_schemas()
    assert set(schemas) == {"envelope", *EVENT_TYPES}
    for schema in schemas.values():
        jsonschema_rs.validator_for(schema)  # each is a valid JSON Schema


async def _everything(app, client, conn):
    """Every kind of change the data center hears of, through the real API."""
    world = await build_rating_world(client, app)  # roster import, merchants, venues, devices, benefits
    city = auth_headers(app, admin("city"))
    first = await visit(client, app, world, VETERAN_ID)
    second = await visit(client, app, world, DISABLED_ID)
    await visit(client, app, world, VETERAN_ID, xuhui=True)
    await reverse(client, world, second)
    refused = await client.post("/v1/scans", json={"code": "CJ1:garbage", "venue_id": world.pudong.venue_id},
                                headers=world.pudong.device_headers)
    assert refused.json()["reason"] == "invalid_code"
    from tests.factories.world import login

    veteran = await login(client, app, VETERAN_ID)
    rated = await client.post(f"/v1/me/redemptions/{first}/rating", json={"stars": 1, "comment": "排队太久，张三说的"},
                              headers=veteran)
    assert rated.status_code == 201, rated.text
    [case] = (await client.get("/v1/admin/ratings", headers=city)).json()["items"]
    replied = await client.post(f"/v1/admin/ratings/{case['id']}/reply", json={"reply": "已整改"}, headers=city)
    assert replied.status_code == 200, replied.text
    updated = await client.patch(f"/v1/admin/venues/{world.pudong.venue_id}", json={"daily_capacity": 300}, headers=city)
    assert updated.status_code == 200, updated.text
    _, device_id = await device_headers(client, city, world.pudong.venue_id)
    assert (await client.post(f"/v1/admin/devices/{device_id}/revoke", headers=city)).status_code in (200, 201)
    return world


async def test_events_validate_against_the_published_schemas(app, client, conn, pool, keyring, receiver):
    await _everything(app, client, conn)
    total = await conn.fetchval("SELECT count(*) FROM outbox")
    await drain(make_relay(pool, keyring, receiver.url), receiver, total)
    schemas = published_schemas()
    envelope = jsonschema_rs.validator_for(schemas["envelope"], validate_formats=True)
    events = list(receiver.deduped().values())
    for event in events:
        envelope.validate(event)
        jsonschema_rs.validator_for(schemas[event["type"]], validate_formats=True).validate(event["data"])
        assert (event["stream"], event["v"]) == EVENT_TYPES[event["type"]]
    assert set(EVENT_TYPES) - {e["type"] for e in events} == set()  # every type was exercised
    text = b"".join(body for body, _ in receiver.raw).decode()
    for personal in (VETERAN_ID, DISABLED_ID, "张三", "排队太久", "欧阳"):
        assert personal not in text
    # a person has one stable pseudonym across event types
    mine = {e["person"] for e in events if e["type"] == "rating.created"}
    assert len(mine) == 1 and mine <= {e["person"] for e in events if e["type"] == "redemption.accepted"}


async def test_receiver_rebuilds_the_ledger_per_venue_and_day(app, client, conn, pool, keyring, receiver):
    world = await build_rating_world(client, app)
    ids = [await visit(client, app, world, VETERAN_ID) for _ in range(4)]
    ids += [await visit(client, app, world, DISABLED_ID, xuhui=True) for _ in range(2)]
    for redemption_id in ids[:2]:
        await reverse(client, world, redemption_id)
    total = await conn.fetchval("SELECT count(*) FROM outbox")
    await drain(make_relay(pool, keyring, receiver.url), receiver, total)
    rebuilt: Counter = Counter()
    for event in receiver.deduped().values():
        if event["type"] == "redemption.accepted":
            rebuilt[(event["data"]["venue_id"], event["data"]["service_day"])] += 1
        elif event["type"] == "redemption.reversed":
            rebuilt[(event["data"]["venue_id"], event["data"]["service_day"])] -= 1
    ours = await conn.fetch(
        "SELECT venue_id::text, service_day::text, sum(CASE WHEN kind = 'redemption' THEN 1 ELSE -1 END) AS net"
        " FROM redemptions GROUP BY 1, 2"
    )
    assert {(r["venue_id"], r["service_day"]): r["net"] for r in ours} == dict(rebuilt)
    assert sum(rebuilt.values()) == 4


async def test_the_audit_archive_is_the_stream_audit(app, client, conn, pool, keyring, receiver):
    """Every audit_log entry leaves once as `audit.entry` (its seq, leaf hash and detail as
    archived), a veteran only as their pseudonym, no person's internal id anywhere."""
    await _everything(app, client, conn)
    from tests.factories.world import login

    issued = await client.post(  # audited with the veteran as actor (credential.issue)
        "/v1/me/credential", json={"holder_jwk": _public_jwk(Ed25519PrivateKey.generate().public_key())},
        headers=await login(client, app, VETERAN_ID),
    )
    assert issued.status_code == 201, issued.text
    total = await conn.fetchval("SELECT count(*) FROM outbox")
    await drain(make_relay(pool, keyring, receiver.url), receiver, total)
    schema = jsonschema_rs.validator_for(published_schemas()["audit.entry"], validate_formats=True)
    sent = {e["data"]["seq"]: e for e in receiver.deduped().values() if e["type"] == "audit.entry"}
    for event in sent.values():
        schema.validate(event["data"])
        assert event["stream"] == "audit"
    archive = await conn.fetch("SELECT * FROM audit_log ORDER BY seq")
    assert sorted(sent) == [row["seq"] for row in archive] and len(archive) >= 5
    pseudonym = Pseudonyms(b"k" * 32).of  # make_relay's key
    veterans = 0
    for row in archive:
        event = sent[row["seq"]]
        data = event["data"]
        assert data["leaf_hash"] == bytes(row["leaf_hash"]).hex()
        assert (data["action"], data["actor"]["kind"], data["object"]["kind"], data["district"]) == (
            row["action"], row["actor_kind"], row["object_kind"], row["district"])
        assert data["detail"] == row["detail"]
        if row["actor_kind"] == "veteran":
            veterans += 1
            assert event["person"] == pseudonym(uuid.UUID(row["actor_id"]))
            assert data["actor"]["id"] is None
        else:
            assert event["person"] is None and data["actor"]["id"] == row["actor_id"]
    assert veterans >= 1  # the credential's issuance
    text = b"".join(body for body, _ in receiver.raw).decode()
    for person_id in await conn.fetch("SELECT id::text FROM people"):
        assert person_id["id"] not in text
