"""A small world for scan tests, built through the real admin API: a venue, a benefit, people, a device."""

from __future__ import annotations

import msgspec

from identity.people import ROSTER_COLUMNS
from tests.merchants.support import credit_code
from tests.tokens import admin, auth_headers

VETERAN_ID = "310101199001011234"
DISABLED_ID = "11010519491231002X"
SUSPENDED_ID = "310104198503077772"
STRANGER_ID = "310104198001011239"

ROSTER = "\n".join(
    (
        ",".join(ROSTER_COLUMNS),
        f"{VETERAN_ID},张三丰,VETERAN,,,VETERAN_CARD,ACTIVE,310000,浦东新区,1990-01-01",
        f"{DISABLED_ID},欧阳娜娜,VETERAN|DISABLED_SERVICEMAN,2,因战,VETERAN_CARD,ACTIVE,310000,310104,1949-12-31",
    )
)

DAILY = {
    "code": "C8",
    "name_zh": "上海科技馆",
    "name_en": "Science Museum",
    "domain": "culture",
    "value": {"kind": "free"},
    "rule": {"op": "has_any_category", "categories": ["VETERAN", "DISABLED_SERVICEMAN"]},
    "companions": {"max": 1},
    "caps": [{"period": "day", "max": 1}],
    "status": "active",
}


class World(msgspec.Struct):
    venue_id: str
    other_venue_id: str
    merchant_id: str
    benefit_id: str
    device_headers: dict
    other_device_headers: dict
    device_id: str


async def device_headers(client, admin_headers, venue_id: str) -> tuple[dict, str]:
    made = await client.post("/v1/admin/devices", json={"venue_id": venue_id, "label": "gate"}, headers=admin_headers)
    assert made.status_code == 201, made.text
    device = made.json()
    token = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})
    assert token.status_code == 200, token.text
    return {"Authorization": "Bearer " + token.json()["access_token"]}, device["device_id"]


async def build_world(client, app, *, capacity: int | None = 500, benefit: dict | None = None) -> World:
    city = auth_headers(app, admin("city"))
    merchant = await client.post(
        "/v1/admin/merchants",
        json={"name": "上海科技馆", "credit_code": credit_code("310115"), "district": "310115",
              "contact_name": "王", "contact_phone": "021-68542000"},
        headers=city,
    )
    assert merchant.status_code == 201, merchant.text
    merchant_id = merchant.json()["id"]
    venues = []
    for name in ("主馆", "分馆"):
        venue = await client.post(
            "/v1/admin/venues",
            json={"merchant_id": merchant_id, "name_zh": name, "name_en": "Main", "district": "310115",
                  "address": "世纪大道 2000 号", "domain": "culture", "daily_capacity": capacity, "opening_hours": []},
            headers=city,
        )
        assert venue.status_code == 201, venue.text
        venues.append(venue.json()["id"])
    created = await client.post("/v1/admin/benefits", json={**(benefit or DAILY), "venue_ids": [venues[0]]}, headers=city)
    assert created.status_code == 201, created.text
    imported = await client.post(
        "/v1/admin/people/import", content=ROSTER.encode(), headers={"content-type": "text/csv", **city}
    )
    assert imported.status_code == 200, imported.text
    headers, device_id = await device_headers(client, city, venues[0])
    other, _ = await device_headers(client, city, venues[1])
    return World(venues[0], venues[1], merchant_id, created.json()["benefit_id"], headers, other, device_id)


def suishen(app, id_number: str) -> str:
    return app.state.city.dev.issue(id_number)
