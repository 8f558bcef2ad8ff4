"""The scan tests' world (Pudong, 310115) plus a venue in Xuhui (310104), and helpers that make
real ledger events by scanning at the gate and log veterans in with a 随申码."""

from __future__ import annotations

import msgspec

from tests.merchants.support import credit_code
from tests.redemption.world import DAILY, DISABLED_ID, VETERAN_ID, World, build_world, device_headers, suishen
from tests.tokens import admin, auth_headers

__all__ = ("DISABLED_ID", "OTHER_DISTRICT", "VETERAN_ID", "RatingWorld", "build_rating_world", "login", "reverse", "visit")

OTHER_DISTRICT = "310104"
UNCAPPED = {**DAILY, "caps": []}  # any number of visits a day, so one person can fill pages


class RatingWorld(msgspec.Struct):
    pudong: World
    xuhui_venue_id: str
    xuhui_device_headers: dict


async def build_rating_world(client, app) -> RatingWorld:
    pudong = await build_world(client, app, capacity=None, benefit=UNCAPPED)
    city = auth_headers(app, admin("city"))
    merchant = await client.post(
        "/v1/admin/merchants",
        json={"name": "徐汇艺术馆", "credit_code": credit_code(OTHER_DISTRICT), "district": OTHER_DISTRICT,
              "contact_name": "李", "contact_phone": "021-64000000"},
        headers=city,
    )
    assert merchant.status_code == 201, merchant.text
    venue = await client.post(
        "/v1/admin/venues",
        json={"merchant_id": merchant.json()["id"], "name_zh": "徐汇馆", "district": OTHER_DISTRICT,
              "address": "漕溪北路 1 号", "domain": "culture", "opening_hours": []},
        headers=city,
    )
    assert venue.status_code == 201, venue.text
    xuhui_venue_id = venue.json()["id"]
    benefit = await client.post(
        "/v1/admin/benefits", json={**UNCAPPED, "code": "C9", "name_zh": "徐汇艺术馆", "venue_ids": [xuhui_venue_id]},
        headers=city,
    )
    assert benefit.status_code == 201, benefit.text
    headers, _ = await device_headers(client, city, xuhui_venue_id)
    return RatingWorld(pudong, xuhui_venue_id, headers)


async def visit(client, app, world: RatingWorld, id_number: str, *, xuhui: bool = False) -> str:
    """One accepted scan at the Pudong venue (or the Xuhui one); its redemption id."""
    venue_id, headers = (world.xuhui_venue_id, world.xuhui_device_headers) if xuhui else (
        world.pudong.venue_id, world.pudong.device_headers
    )
    scanned = await client.post("/v1/scans", json={"code": suishen(app, id_number), "venue_id": venue_id}, headers=headers)
    assert scanned.status_code == 200, scanned.text
    assert scanned.json()["decision"] == "accepted", scanned.text
    return scanned.json()["redemption_id"]


async def reverse(client, world: RatingWorld, redemption_id: str) -> str:
    reversed_ = await client.post(
        f"/v1/scans/{redemption_id}/reversal", json={"reason": "误扫"}, headers=world.pudong.device_headers
    )
    assert reversed_.status_code == 200, reversed_.text
    return reversed_.json()["reversal_id"]


async def login(client, app, id_number: str) -> dict[str, str]:
    """A veteran's session, through the real 随申码 login."""
    session = await client.post("/v1/auth/suishen", json={"code": suishen(app, id_number)})
    assert session.status_code == 200, session.text
    return {"Authorization": "Bearer " + session.json()["access_token"]}
