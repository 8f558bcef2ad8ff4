"""Data-quality warnings (第二十条): a seeded problem raises its warning, fixing it clears it."""

from __future__ import annotations

import uuid

import exchange
from foundation.outbox import write_event
from tests.factories.people import ROSTER, STRANGER_ID
from tests.factories.world import build_world
from tests.tokens import admin, auth_headers


async def check(conn, lag: int = 300) -> dict[tuple[str, str | None], exchange.QualityWarning]:
    warnings = await exchange.run_quality_checks(conn, lag_warning_seconds=lag)
    return {(w.code, w.district): w for w in warnings}


async def test_seeded_problems_raise_warnings_and_fixes_clear_them(app, client, conn):
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    found = await check(conn)
    # the scan world's venue has neither coordinates nor opening hours
    venue = found[("venue.missing_location", "310115")]
    assert venue.severity == "warning" and world.venue_id in venue.sample_ids and venue.count >= 1
    assert ("venue.missing_opening_hours", "310115") in found
    first_seen = venue.first_seen

    # a roster line without any card, imported through the API: the after-import check sees it
    header = ROSTER.splitlines()[0]
    line = f"{STRANGER_ID},李四,VETERAN,,,NONE,ACTIVE,310000,310115,1980-01-01"
    imported = await client.post("/v1/admin/people/import", content=f"{header}\n{line}".encode(),
                                 headers={"content-type": "text/csv", **city})
    assert imported.status_code == 200, imported.text
    listed = (await client.get("/v1/admin/quality", headers=city)).json()
    [card] = [w for w in listed if w["code"] == "roster.missing_card"]
    assert card["count"] == 1 and card["district"] == "310115" and card["sample_ids"] == [STRANGER_ID[:3] + "*" * 11 + STRANGER_ID[-4:]]
    assert STRANGER_ID not in str(listed) and "李四" not in str(listed)

    # a person whose birth date was lost (the import derives it from the ID number, so: by hand)
    masked = STRANGER_ID[:3] + "*" * 11 + STRANGER_ID[-4:]
    await conn.execute("UPDATE people SET birth_date = NULL WHERE id_masked = $1", masked)
    # one device at two venues; a venue whose invalid-code refusals jump
    for venue_id in (world.venue_id, world.other_venue_id):
        await conn.execute(
            "INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id, device_id)"
            " SELECT gen_random_uuid(), current_date, 'invalid_code', $1, merchant_id, $2 FROM venues WHERE id = $1",
            uuid.UUID(venue_id), uuid.UUID(int=13),
        )
    await conn.execute(
        "INSERT INTO rejected_scans (id, service_day, reason, venue_id, merchant_id)"
        " SELECT gen_random_uuid(), current_date, 'invalid_code', id, merchant_id FROM venues, generate_series(1, 25)"
        " WHERE id = $1",
        uuid.UUID(world.venue_id),
    )
    # an event stuck in the outbox for longer than the threshold
    await write_event(conn, "roster.imported", {"lines": 0})
    await conn.execute("UPDATE outbox SET at = now() - interval '1 hour'")
    found = await check(conn)
    assert found[("roster.missing_birth_date", "310115")].count == 1
    assert found[("device.two_venues", None)].sample_ids == [str(uuid.UUID(int=13))]
    assert found[("venue.refusal_spike", "310115")].severity == "critical"
    assert found[("exchange.lag", None)].count >= 1

    # district scoping: Pudong's admin sees Pudong's, Xuhui's admin none of them, and no city-wide one
    pudong = (await client.get("/v1/admin/quality", headers=auth_headers(app, admin("district", district="310115")))).json()
    assert {w["district"] for w in pudong} == {"310115"}
    xuhui = (await client.get("/v1/admin/quality", headers=auth_headers(app, admin("district", district="310104")))).json()
    assert all(w["district"] == "310104" for w in xuhui)
    assert (await client.get("/v1/admin/quality", headers=world.device_headers)).status_code in (401, 403)

    # fix them: coordinates and hours, the birth date, old refusals, the lag (delivered)
    for venue_id in (world.venue_id, world.other_venue_id):
        fixed = await client.patch(
            f"/v1/admin/venues/{venue_id}",
            json={"location": {"lat": 31.2, "lng": 121.5},
                  "opening_hours": [{"days": [1, 2, 3], "opens": "09:00", "closes": "17:00"}]},
            headers=city,
        )
        assert fixed.status_code == 200, fixed.text
    fixed_card = line.replace(",NONE,", ",VETERAN_CARD,")
    await client.post("/v1/admin/people/import", content=f"{header}\n{fixed_card}".encode(),
                      headers={"content-type": "text/csv", **city})
    await conn.execute("UPDATE people SET birth_date = '1980-01-01' WHERE birth_date IS NULL")
    await conn.execute("ALTER TABLE rejected_scans DISABLE TRIGGER USER")  # what a week does: age the refusals
    await conn.execute("UPDATE rejected_scans SET at = now() - interval '9 days'")
    await conn.execute("ALTER TABLE rejected_scans ENABLE TRIGGER USER")
    await conn.execute("DELETE FROM outbox")
    found = await check(conn)
    for gone in (("venue.missing_location", "310115"), ("venue.missing_opening_hours", "310115"),
                 ("roster.missing_birth_date", "310115"), ("roster.missing_card", "310115"), ("device.two_venues", None),
                 ("venue.refusal_spike", "310115"), ("exchange.lag", None)):
        assert gone not in found, gone
    assert await conn.fetchval(
        "SELECT cleared_at IS NOT NULL FROM quality_warnings WHERE code = 'venue.missing_location' AND district = '310115'"
    )
    assert [w for w in (await client.get("/v1/admin/quality", headers=city)).json() if w["district"] == "310115"] == []
    # a warning that returns starts a new first_seen
    await conn.execute("UPDATE venues SET latitude = NULL, longitude = NULL WHERE id = $1", uuid.UUID(world.venue_id))
    again = (await check(conn))[("venue.missing_location", "310115")]
    assert again.first_seen > first_seen and again.sample_ids == [world.venue_id]


async def test_quality_gauges_in_metrics(app, client, conn):
    """The worker's sampler (every 5 s) publishes one gauge per warning code and the relay's figures."""
    import asyncio

    await build_world(client, app)
    await check(conn)
    count = (await exchange.quality_counts(conn))["venue.missing_location"]
    async with asyncio.timeout(15):
        while f'chongjun_quality_warning{{code="venue.missing_location"}} {float(count)}' not in (text := (await client.get("/metrics")).text):
            await asyncio.sleep(0.5)
    assert "chongjun_exchange_backlog_events" in text and "chongjun_exchange_lag_seconds" in text
    assert "chongjun_exchange_delivered_events" in text and "chongjun_exchange_dead_lettered_events" in text


async def test_the_periodic_monitor_runs_once_per_interval_for_all_workers(conn, pool):
    """Each worker's timer asks; only the first within the interval runs the checks (their
    eight days of ledger are read once a minute, not once per worker): two connections stand
    for two workers. A run that must happen (after an import) runs regardless."""
    await conn.execute("DELETE FROM quality_checked")
    first = await exchange.run_quality_checks(conn, lag_warning_seconds=300, unless_ran_within=60)
    assert first is not None
    async with pool.acquire() as other_worker:
        assert await exchange.run_quality_checks(other_worker, lag_warning_seconds=300, unless_ran_within=60) is None
        assert await exchange.run_quality_checks(other_worker, lag_warning_seconds=300) is not None
        # the interval over (here: made short), the next timer runs them again
        assert await exchange.run_quality_checks(other_worker, lag_warning_seconds=300, unless_ran_within=0.0) is not None
    ran_at = await conn.fetchval("SELECT at FROM quality_checked")
    assert await exchange.run_quality_checks(conn, lag_warning_seconds=300, unless_ran_within=3600) is None
    assert await conn.fetchval("SELECT at FROM quality_checked") == ran_at  # a skipped run notes nothing
