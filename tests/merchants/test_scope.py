"""District scope over HTTP on every merchants admin path (issue 11, defect 4).

A Xuhui (310104) admin aims every write and read at a Pudong (310115) merchant and what hangs off
it (venue, device, staff account, statement): each answers exactly what an id that does not exist
answers, nothing is written, and the Pudong merchant's staff see nothing planted.
"""

from __future__ import annotations

import uuid

from tests import tokens
from tests.foundation.test_http_contract import assert_problem
from tests.merchants.test_api import create_merchant, create_venue

PUDONG, XUHUI = "310115", "310104"


def _venue_body(merchant_id, district=XUHUI) -> dict:
    return {"merchant_id": str(merchant_id), "name_zh": "植入馆", "district": district, "address": "漕溪北路 1 号", "domain": "culture"}


def _staff_body(merchant_id) -> dict:
    return {"merchant_id": str(merchant_id), "username": f"plant{uuid.uuid4().hex[:8]}", "password": "correct horse battery"}


async def _pudong_world(app, client):
    city = tokens.auth_headers(app, tokens.admin("city"))
    merchant = await create_merchant(client, city, district=PUDONG)
    venue = await create_venue(client, city, merchant["id"], district=PUDONG)
    device = await client.post("/v1/admin/devices", json={"venue_id": venue["id"], "label": "东门"}, headers=city)
    staff = await client.post("/v1/admin/staff", json=_staff_body(merchant["id"]), headers=city)
    assert device.status_code == 201 and staff.status_code == 201, (device.text, staff.text)
    return city, merchant, venue, device.json()["device_id"], staff.json()["account"]["id"]


async def test_a_district_admin_cannot_plant_a_venue_on_another_districts_merchant(app, client, conn):
    """The reported attack: 201 before, now the same 404 as a random id, and nothing written."""
    _, merchant, venue, _, _ = await _pudong_world(app, client)
    xuhui = tokens.auth_headers(app, tokens.admin("district", district=XUHUI))
    planted = await client.post("/v1/admin/venues", json=_venue_body(merchant["id"]), headers=xuhui)
    random = await client.post("/v1/admin/venues", json=_venue_body(uuid.uuid4()), headers=xuhui)
    real_body = assert_problem(planted, 404, "merchant-not-found")
    random_body = assert_problem(random, 404, "merchant-not-found")
    assert {k: v for k, v in real_body.items() if k != "request_id"} == {k: v for k, v in random_body.items() if k != "request_id"}
    assert await conn.fetchval("SELECT count(*) FROM venues WHERE merchant_id = $1", uuid.UUID(merchant["id"])) == 1
    # The merchant (credit code, contact) stays out of Xuhui's reach ...
    assert_problem(await client.get(f"/v1/admin/merchants/{merchant['id']}", headers=xuhui), 404, "merchant-not-found")
    assert merchant["credit_code"] not in (await client.get("/v1/admin/merchants", headers=xuhui)).text
    # ... and its staff portal shows its own venue only.
    portal = tokens.auth_headers(app, tokens.staff(uuid.UUID(merchant["id"])))
    assert [v["id"] for v in (await client.get("/v1/merchant/venues", headers=portal)).json()["items"]] == [venue["id"]]


async def test_every_admin_path_answers_another_districts_objects_as_missing(app, client, conn):
    """Merchants, venues, devices, staff, statements: other-district == nonexistent, byte for byte."""
    _, merchant, venue, device_id, staff_id = await _pudong_world(app, client)
    xuhui = tokens.auth_headers(app, tokens.admin("district", district=XUHUI))
    month = "2026-11"

    def calls(m, v, d, s):
        return [
            ("GET", f"/v1/admin/merchants/{m}", None),
            ("PATCH", f"/v1/admin/merchants/{m}", {"contact_name": "改"}),
            ("GET", f"/v1/admin/merchants/{m}/statements/{month}", None),
            ("POST", "/v1/admin/venues", _venue_body(m)),
            ("GET", f"/v1/admin/venues/{v}", None),
            ("PATCH", f"/v1/admin/venues/{v}", {"address": "某路 3 号"}),
            ("POST", "/v1/admin/devices", {"venue_id": str(v), "label": "植入闸机"}),
            ("GET", f"/v1/admin/devices/{d}", None),
            ("POST", f"/v1/admin/devices/{d}/revoke", None),
            ("POST", f"/v1/admin/devices/{d}/secret", None),
            ("GET", f"/v1/admin/devices/{d}/setup-qr.png", None),
            ("POST", "/v1/admin/staff", _staff_body(m)),
            ("GET", f"/v1/admin/staff/{s}", None),
            ("PATCH", f"/v1/admin/staff/{s}", {"disabled": True}),
        ]

    real = calls(merchant["id"], venue["id"], device_id, staff_id)
    missing = calls(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    before = await conn.fetchval("SELECT count(*) FROM audit_log")
    for (method, path, body), (_, missing_path, missing_body) in zip(real, missing):
        got = await client.request(method, path, json=body, headers=xuhui)
        expected = await client.request(method, missing_path, json=missing_body, headers=xuhui)
        assert got.status_code == expected.status_code == 404, (method, path, got.text)
        assert got.json()["type"] == expected.json()["type"] and got.json()["detail"] == expected.json()["detail"], path
    assert await conn.fetchval("SELECT count(*) FROM audit_log") == before  # nothing was changed
    # Lists reached through the victim (a venue through its merchant, a device through its venue) are empty.
    for path in (
        f"/v1/admin/venues?merchant_id={merchant['id']}",
        f"/v1/admin/devices?venue_id={venue['id']}",
        f"/v1/admin/staff?merchant_id={merchant['id']}",
    ):
        response = await client.get(path, headers=xuhui)
        assert response.status_code == 200 and response.json()["items"] == [], path


async def test_seen_but_not_managed_is_out_of_scope_and_own_merchants_take_venues(app, client):
    """A Pudong merchant with a venue the city placed in Xuhui is visible to Xuhui (403, not 404,
    since they can read it), but only Pudong attaches venues and staff to it or changes it."""
    city, merchant, _, _, _ = await _pudong_world(app, client)
    await create_venue(client, city, merchant["id"], district=XUHUI, name="徐汇分馆")
    xuhui = tokens.auth_headers(app, tokens.admin("district", district=XUHUI))
    assert (await client.get(f"/v1/admin/merchants/{merchant['id']}", headers=xuhui)).status_code == 200
    assert_problem(await client.post("/v1/admin/venues", json=_venue_body(merchant["id"]), headers=xuhui), 403, "out-of-scope")
    assert_problem(await client.post("/v1/admin/staff", json=_staff_body(merchant["id"]), headers=xuhui), 403, "out-of-scope")
    assert_problem(await client.patch(f"/v1/admin/merchants/{merchant['id']}", json={"name": "x"}, headers=xuhui), 403, "out-of-scope")
    pudong = tokens.auth_headers(app, tokens.admin("district", district=PUDONG))
    assert (await client.post("/v1/admin/venues", json=_venue_body(merchant["id"], PUDONG), headers=pudong)).status_code == 201
    own = await create_merchant(client, xuhui, district=XUHUI)
    assert (await client.post("/v1/admin/venues", json=_venue_body(own["id"]), headers=xuhui)).status_code == 201


async def test_an_auditor_reads_devices_but_never_takes_a_setup_code(app, client):
    """The setup QR holds the device secret and is served once: fetching it is managing the device."""
    city, _, _, device_id, _ = await _pudong_world(app, client)
    auditor = tokens.auth_headers(app, tokens.admin("auditor"))
    assert (await client.get(f"/v1/admin/devices/{device_id}", headers=auditor)).status_code == 200
    assert_problem(await client.get(f"/v1/admin/devices/{device_id}/setup-qr.png", headers=auditor), 403, "forbidden")
    assert (await client.get(f"/v1/admin/devices/{device_id}/setup-qr.png", headers=city)).status_code == 200
