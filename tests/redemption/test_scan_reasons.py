"""Honest reasons (issue 11 §7): the answer and the ledger say what actually stopped a scan."""

from __future__ import annotations

import uuid

from benefits.redemption import reports
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import DAILY, build_world, suishen
from tests.tokens import admin, auth_headers, staff


async def _scan(client, world, code, **body):
    return await client.post("/v1/scans", json={"code": code, "venue_id": world.venue_id, **body}, headers=world.device_headers)


async def test_a_paused_benefit_scanned_without_benefit_id_says_inactive_not_ineligible(app, client, conn):
    """The veteran is entitled to the venue's benefit, which is paused: telling them they are
    "not eligible" would be false."""
    world = await build_world(client, app)
    city = auth_headers(app, admin("city"))
    only_disabled = {**DAILY, "code": "T1", "rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"}}
    t1 = await client.post("/v1/admin/benefits", json={**only_disabled, "venue_ids": [world.venue_id]}, headers=city)
    assert t1.status_code == 201, t1.text
    assert (await _scan(client, world, suishen(app, VETERAN_ID))).json()["decision"] == "accepted"  # list cached
    paused = await client.post(f"/v1/admin/benefits/{world.benefit_id}/status", json={"status": "paused"}, headers=city)
    assert paused.status_code == 200, paused.text

    refused = (await _scan(client, world, suishen(app, VETERAN_ID))).json()
    assert refused["decision"] == "rejected"
    assert refused["reason"] == "benefit_inactive" and refused["message"] == "该优待项目未开放", refused
    row = await conn.fetchrow("SELECT reason, benefit_id FROM rejected_scans")
    assert row["reason"] == "benefit_inactive" and str(row["benefit_id"]) == world.benefit_id

    # Someone entitled to the venue's active benefit still gets it.
    assert (await _scan(client, world, suishen(app, DISABLED_ID))).json()["benefit"]["code"] == "T1"


async def test_a_refused_row_names_the_code_of_its_benefit(app, client, conn):
    world = await build_world(client, app)
    too_many = (await _scan(client, world, suishen(app, VETERAN_ID), companions=3)).json()
    assert too_many["reason"] == "too_many_companions"
    unknown = (await _scan(client, world, suishen(app, VETERAN_ID), benefit_id=str(uuid.uuid4()))).json()
    assert unknown["reason"] == "benefit_inactive"

    page = await reports.list_redemptions(conn, staff(uuid.UUID(world.merchant_id)), limit=10, cursor=None)
    codes = {entry.reason: entry.benefit_code for entry in page.items}
    assert codes == {"too_many_companions": "C8", "benefit_inactive": None}
    assert all(entry.result == "rejected" for entry in page.items)
