"""Merchant views over the ledger: scoped redemptions, daily report, sealed monthly statements."""

from __future__ import annotations

import copy
import csv
import io
import uuid
from datetime import date, datetime, timedelta, timezone

import msgspec
import pytest

from foundation.errors import Forbidden
from benefits.redemption import reports
from merchants.errors import InvalidPeriod, VenueNotFound
from merchants import SealKey
from benefits.redemption.seal import canonical_bytes, verify_sealed
from tests import tokens
from tests.factories.world import make_merchant, make_venue, staff

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

T1, C3 = uuid.uuid4(), uuid.uuid4()
KEY = SealKey(Ed25519PrivateKey.generate())
JWKS = {"keys": [KEY.public_jwk]}


async def redeem(conn, venue, benefit_id, code, *, day, value_fen=0, companions=0, at=None):
    rid = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, at, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, jti, code_source, companions, value_kind, value_fen)
        VALUES ($1, 'redemption', $2, $3, $4, $5, 1, $6, $7, $8, $9, 'cj', $10, 'free_entry', $11)
        """,
        rid, at or datetime.now(timezone.utc), day, uuid.uuid4(), benefit_id, code, venue.id, venue.merchant_id,
        uuid.uuid4().hex, companions, value_fen,
    )
    return rid


async def reverse(conn, redemption_id, *, day):
    original = await conn.fetchrow("SELECT * FROM redemptions WHERE id = $1", redemption_id)
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, reverses, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, value_kind, value_fen, reason)
        VALUES ($1, 'reversal', $2, $3, $4, $5, 1, $6, $7, $8, 'free_entry', $9, 'wrong person')
        """,
        uuid.uuid4(), redemption_id, day, original["person_id"], original["benefit_id"], original["benefit_code"],
        original["venue_id"], original["merchant_id"], original["value_fen"],
    )


async def reject(conn, venue, reason, *, day):
    await conn.execute(
        "INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id) VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(), day, reason, venue.id, venue.merchant_id,
    )


@pytest.fixture
async def world(conn):
    mine = await make_merchant(conn, name="上海博物馆")
    east = await make_venue(conn, mine.id, name="东馆")
    west = await make_venue(conn, mine.id, name="西馆")
    other = await make_merchant(conn, name="别家")
    theirs = await make_venue(conn, other.id, name="别家馆")
    return mine, east, west, other, theirs


async def test_redemptions_are_scoped_filtered_and_paged(conn, world):
    mine, east, west, other, theirs = world
    day = date(2026, 11, 3)
    ids = [await redeem(conn, east, T1, "T1", day=day, at=datetime(2026, 11, 3, 2, i, tzinfo=timezone.utc)) for i in range(5)]
    await reverse(conn, ids[0], day=day)
    await redeem(conn, west, C3, "C3", day=day + timedelta(days=1))
    await reject(conn, east, "quota_exhausted", day=day)
    await redeem(conn, theirs, T1, "T1", day=day)
    me = staff(mine.id)
    everything = await reports.list_redemptions(conn, me, limit=100, cursor=None)
    assert len(everything.items) == 7 and everything.next_cursor is None
    assert {e.venue_id for e in everything.items} == {east.id, west.id}
    encoded = msgspec.json.encode(everything).decode()
    assert "person_id" not in encoded
    assert not any(str(p) in encoded for p in await conn.fetchval("SELECT array_agg(person_id) FROM redemptions"))
    results = {e.id: e.result for e in everything.items}
    assert results[ids[0]] == "reversed" and results[ids[1]] == "accepted"
    assert [e.result for e in (await reports.list_redemptions(conn, me, limit=10, cursor=None, result="rejected")).items] == ["rejected"]
    only_west = await reports.list_redemptions(conn, me, limit=10, cursor=None, venue_id=west.id)
    assert [e.benefit_code for e in only_west.items] == ["C3"]
    by_day = await reports.list_redemptions(conn, me, limit=10, cursor=None, day_from=day, day_to=day, benefit_id=T1)
    assert len(by_day.items) == 5
    seen, cursor = [], None
    while True:
        page = await reports.list_redemptions(conn, me, limit=2, cursor=cursor)
        seen += [e.id for e in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == [e.id for e in everything.items]
    with pytest.raises(VenueNotFound):
        await reports.list_redemptions(conn, me, limit=10, cursor=None, venue_id=theirs.id)
    with pytest.raises(Forbidden):
        await reports.list_redemptions(conn, staff(None), limit=10, cursor=None)


async def test_daily_report_nets_reversals(conn, world):
    mine, east, west, *_ = world
    day = date(2026, 11, 3)
    first = await redeem(conn, east, T1, "T1", day=day, value_fen=3000, companions=1)
    await redeem(conn, east, T1, "T1", day=day, value_fen=3000)
    await redeem(conn, east, C3, "C3", day=day, value_fen=500)
    await reverse(conn, first, day=day)
    await reject(conn, east, "not_eligible", day=day)
    await reject(conn, east, "not_eligible", day=day)
    report = await reports.daily_report(conn, staff(mine.id), day)
    east_report = next(v for v in report.venues if v.venue_id == east.id)
    t1 = next(line for line in east_report.lines if line.benefit_code == "T1")
    assert (t1.redemptions, t1.reversals, t1.net_count, t1.net_admitted, t1.net_value_fen) == (2, 1, 1, 1, 3000)
    assert east_report.rejected == {"not_eligible": 2}
    assert (east_report.net_count, east_report.net_value_fen) == (2, 3500)
    assert next(v for v in report.venues if v.venue_id == west.id).lines == []


async def test_daily_report_csv_carries_the_refusals_its_json_has(app, client, conn, world):
    """Issue 11 §7: the CSV dropped `rejected`. It has one row per venue and refusal reason."""
    mine, east, west, *_ = world
    day = date(2026, 11, 3)
    await redeem(conn, east, T1, "T1", day=day, value_fen=3000)
    for reason in ("not_eligible", "not_eligible", "quota_exhausted"):
        await reject(conn, east, reason, day=day)
    await reject(conn, west, "outside_window", day=day)
    headers = tokens.auth_headers(app, tokens.staff(mine.id))
    url = f"/v1/merchant/reports/daily?date={day}"
    as_json = (await client.get(url, headers=headers)).json()
    as_csv = await client.get(url, headers={**headers, "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    from_csv = {}
    for row in rows:
        if row["rejected_reason"]:
            assert row["benefit_code"] == "" and row["date"] == str(day)
            from_csv.setdefault(row["venue_id"], {})[row["rejected_reason"]] = int(row["rejected"])
    assert from_csv == {v["venue_id"]: v["rejected"] for v in as_json["venues"] if v["rejected"]}
    assert from_csv[str(east.id)] == {"not_eligible": 2, "quota_exhausted": 1}
    [line] = [row for row in rows if row["benefit_code"]]
    assert (line["benefit_code"], line["net_count"], line["rejected"]) == ("T1", "1", "")


async def test_every_csv_names_its_charset_once(app, client, conn, world):
    """Issue 11 §7: `text/csv; charset=utf-8; charset=utf-8` on every CSV answer."""
    mine, east, *_ = world
    await redeem(conn, east, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    headers = {**tokens.auth_headers(app, tokens.staff(mine.id)), "Accept": "text/csv"}
    city = {**tokens.auth_headers(app, tokens.admin("city")), "Accept": "text/csv"}
    for url, who in (
        ("/v1/merchant/redemptions", headers),
        ("/v1/merchant/reports/daily?date=2026-10-05", headers),
        ("/v1/merchant/statements/2026-10", headers),
        ("/v1/merchant/venues", headers),
        ("/v1/admin/merchants", city),
    ):
        response = await client.get(url, headers=who)
        assert response.status_code == 200, (url, response.text)
        assert response.headers["content-type"] == "text/csv; charset=utf-8", url


async def test_statement_is_sealed_and_verifies_offline(conn, world):
    mine, east, west, *_ = world
    first = await redeem(conn, east, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    await redeem(conn, east, T1, "T1", day=date(2026, 10, 31), value_fen=3000)
    await redeem(conn, west, C3, "C3", day=date(2026, 10, 9), value_fen=500)
    await redeem(conn, west, C3, "C3", day=date(2026, 11, 1), value_fen=500)  # next month
    await reverse(conn, first, day=date(2026, 10, 5))
    now = datetime(2026, 11, 27, 8, tzinfo=timezone.utc)
    sealed = await reports.monthly_statement(
        conn, staff(mine.id), "2026-10", key=KEY, jwks_url="/.well-known/jwks.json", reversal_window_seconds=1800, now=now
    )
    s = sealed.statement
    assert (s.period_start, s.period_end, s.final, s.net_count, s.net_value_fen) == (date(2026, 10, 1), date(2026, 10, 31), True, 2, 3500)
    document = msgspec.json.decode(msgspec.json.encode(sealed))  # what a client receives
    assert verify_sealed(document, JWKS)
    # Any change to any byte of the statement or of the seal breaks it.
    tampered = copy.deepcopy(document)
    tampered["statement"]["venues"][0]["net_value_fen"] += 1
    assert not verify_sealed(tampered, JWKS)
    payload = canonical_bytes(document["statement"])
    for i in range(0, len(payload), max(1, len(payload) // 40)):
        flipped = bytearray(payload)
        flipped[i] ^= 0x01
        try:
            changed = {"statement": msgspec.json.decode(bytes(flipped)), "seal": document["seal"]}
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue  # no longer JSON: nothing to verify
        assert not verify_sealed(changed, JWKS), i
    jws = document["seal"]["jws"]
    for i in range(len(jws)):
        if jws[i] == ".":
            continue
        bad = copy.deepcopy(document)
        bad["seal"]["jws"] = jws[:i] + ("A" if jws[i] != "A" else "B") + jws[i + 1 :]
        assert not verify_sealed(bad, JWKS), i
    other_key = SealKey(Ed25519PrivateKey.generate())
    assert not verify_sealed(document, {"keys": [{**other_key.public_jwk, "kid": KEY.kid}]})


async def test_statement_period_rules(conn, world):
    mine, east, *_ = world
    now = datetime(2026, 11, 27, 8, tzinfo=timezone.utc)
    for bad in ("2026-13", "2026-1", "26-11", "2026-11-01"):
        with pytest.raises(InvalidPeriod):
            await reports.monthly_statement(conn, staff(mine.id), bad, key=KEY, jwks_url="x", reversal_window_seconds=0, now=now)
    with pytest.raises(InvalidPeriod):
        await reports.monthly_statement(conn, staff(mine.id), "2026-12", key=KEY, jwks_url="x", reversal_window_seconds=0, now=now)
    running = await reports.monthly_statement(
        conn, staff(mine.id), "2026-11", key=KEY, jwks_url="x", reversal_window_seconds=1800, now=now, venue_id=east.id
    )
    assert running.statement.final is False and [v.venue_id for v in running.statement.venues] == [east.id]
    assert running.statement.period_end == date(2026, 11, 30)


async def test_admins_get_statements_in_their_scope(conn, world):
    from tests.factories.world import city_admin, district_admin, make_venue

    mine, east, *_ = world
    xuhui_venue = await make_venue(conn, mine.id, district="310104", name="徐汇分馆")
    await redeem(conn, east, T1, "T1", day=date(2026, 10, 5), value_fen=3000)
    await redeem(conn, xuhui_venue, T1, "T1", day=date(2026, 10, 6), value_fen=1000)
    now = datetime(2026, 11, 27, 8, tzinfo=timezone.utc)
    kwargs = {"key": KEY, "jwks_url": "x", "reversal_window_seconds": 0, "now": now, "merchant_id": mine.id}
    whole = await reports.monthly_statement(conn, city_admin(), "2026-10", **kwargs)
    assert whole.statement.net_value_fen == 4000 and len(whole.statement.venues) == 3
    xuhui = await reports.monthly_statement(conn, district_admin("310104"), "2026-10", **kwargs)
    assert [v.venue_id for v in xuhui.statement.venues] == [xuhui_venue.id] and xuhui.statement.net_value_fen == 1000
    assert verify_sealed(msgspec.json.decode(msgspec.json.encode(xuhui)), JWKS)
    with pytest.raises(VenueNotFound):
        await reports.monthly_statement(conn, district_admin("310104"), "2026-10", venue_id=east.id, **kwargs)
    from merchants.errors import MerchantNotFound

    with pytest.raises(MerchantNotFound):
        await reports.monthly_statement(conn, district_admin("310151"), "2026-10", **kwargs)
