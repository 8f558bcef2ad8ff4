"""The merchants routes over HTTP: admin CRUD, device life cycle, merchant views, CSV, the seal."""

from __future__ import annotations

import csv
import io
import uuid


from benefits.redemption.seal import verify_sealed
from tests import tokens
from tests.foundation.test_http_contract import assert_problem
from tests.factories.world import credit_code
from tests.support import both_profiles

PUDONG, XUHUI = "310115", "310104"


def city(app):
    return tokens.auth_headers(app, tokens.admin("city"))


async def create_merchant(client, headers, district=PUDONG, name="上海博物馆"):
    body = {"name": name, "credit_code": credit_code(district), "district": district, "contact_name": "王", "contact_phone": "021-63723500"}
    response = await client.post("/v1/admin/merchants", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def create_venue(client, headers, merchant_id, district=PUDONG, name="东馆"):
    body = {
        "merchant_id": merchant_id, "name_zh": name, "name_en": "East", "district": district, "address": "人民大道 201 号",
        "location": {"lat": 31.228, "lng": 121.475}, "domain": "culture", "daily_capacity": 500,
        "opening_hours": [{"days": [2, 3, 4, 5, 6, 7], "opens": "09:00", "closes": "17:00"}],
    }
    response = await client.post("/v1/admin/venues", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_admin_crud_paging_and_problems(app, client, conn):
    admin = city(app)
    created = [await create_merchant(client, admin, name=f"商户{i}") for i in range(3)]
    page = (await client.get("/v1/admin/merchants?limit=2", headers=admin)).json()
    assert [m["id"] for m in page["items"]] == [m["id"] for m in created[:2]] and page["next_cursor"]
    rest = (await client.get(f"/v1/admin/merchants?limit=2&cursor={page['next_cursor']}", headers=admin)).json()
    assert [m["id"] for m in rest["items"]] == [created[2]["id"]] and rest["next_cursor"] is None
    assert_problem(await client.get("/v1/admin/merchants?cursor=garbage", headers=admin), 400, "invalid-cursor")
    assert_problem(await client.get("/v1/admin/merchants?limit=1000", headers=admin), 400, "invalid-request")
    bad_code = {**created[0], "credit_code": "91350100M000100Y44"}
    for drop in ("id", "status", "created_at", "updated_at"):
        bad_code.pop(drop)
    assert_problem(await client.post("/v1/admin/merchants", json=bad_code, headers=admin), 422, "invalid-credit-code")
    assert_problem(
        await client.post("/v1/admin/merchants", json={**bad_code, "credit_code": credit_code(), "status": "active"}, headers=admin),
        400, "invalid-request",
    )
    changed = await client.patch(f"/v1/admin/merchants/{created[0]['id']}", json={"contact_phone": "021-00000000"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["contact_phone"] == "021-00000000"
    assert_problem(await client.get(f"/v1/admin/merchants/{uuid.uuid4()}", headers=admin), 404, "merchant-not-found")
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE object_kind = 'merchant'") == 4
    # A district admin onboards only into their own district.
    xuhui = tokens.auth_headers(app, tokens.admin("district", district=XUHUI))
    assert_problem(await client.post("/v1/admin/merchants", json={**bad_code, "credit_code": credit_code()}, headers=xuhui), 403, "out-of-scope")
    assert (await client.get("/v1/admin/merchants", headers=xuhui)).json()["items"] == []


@both_profiles
async def test_device_life_cycle_over_http(app, client):
    admin = city(app)
    merchant = await create_merchant(client, admin)
    venue = await create_venue(client, admin, merchant["id"])
    staff = tokens.auth_headers(app, tokens.staff(uuid.UUID(merchant["id"])))
    provisioned = await client.post("/v1/merchant/devices", json={"venue_id": venue["id"], "label": "东门 1"}, headers=staff)
    assert provisioned.status_code == 201, provisioned.text
    device = provisioned.json()
    assert device["setup_qr_url"] == f"/v1/merchant/devices/{device['device_id']}/setup-qr.png"
    png = await client.get(device["setup_qr_url"], headers=staff)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert_problem(await client.get(device["setup_qr_url"], headers=staff), 404, "setup-qr-gone")
    token = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})
    assert token.status_code == 200, token.text
    assert token.json()["expires_in"] <= 900
    as_device = {"Authorization": "Bearer " + token.json()["access_token"]}
    me = (await client.get("/v1/devices/me", headers=as_device)).json()
    assert (me["venue_id"], me["merchant_id"], me["venue_name_zh"]) == (venue["id"], merchant["id"], "东馆")
    assert_problem(
        await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": "x" * 43}), 401, "bad-device-credentials"
    )
    # A device token never reaches the admin or merchant routes.
    assert (await client.get("/v1/admin/devices", headers=as_device)).status_code == 403
    assert (await client.get("/v1/merchant/devices", headers=as_device)).status_code == 403
    # Revoke: the very next request with the unexpired token fails.
    revoked = await client.post(f"/v1/admin/devices/{device['device_id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert (await client.get("/v1/devices/me", headers=as_device)).status_code == 401
    assert (await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})).status_code == 401


async def test_roll_secret_over_http(app, client):
    admin = city(app)
    merchant = await create_merchant(client, admin)
    venue = await create_venue(client, admin, merchant["id"])
    device = (await client.post("/v1/admin/devices", json={"venue_id": venue["id"], "label": "g"}, headers=admin)).json()
    assert device["setup_qr_url"].startswith("/v1/admin/devices/")
    before = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})
    device_headers = {"Authorization": "Bearer " + before.json()["access_token"]}
    scan = {"code": "CJ1:x", "venue_id": venue["id"]}
    assert (await client.post("/v1/scans", json=scan, headers=device_headers)).status_code == 200
    # Rolled within the same second as the token was issued: the old secret's token still dies,
    # though it has not expired (generations are counted, not timed).
    rolled = (await client.post(f"/v1/admin/devices/{device['device_id']}/secret", headers=admin)).json()
    assert (await client.post("/v1/scans", json=scan, headers=device_headers)).status_code == 401
    assert rolled["secret"] != device["secret"]
    old = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": device["secret"]})
    assert old.status_code == 401
    new = await client.post("/v1/devices/token", json={"device_id": device["device_id"], "secret": rolled["secret"]})
    assert new.status_code == 200
    new_headers = {"Authorization": "Bearer " + new.json()["access_token"]}
    assert (await client.post("/v1/scans", json=scan, headers=new_headers)).status_code == 200


async def test_public_venues(app, client):
    admin = city(app)
    merchant = await create_merchant(client, admin)
    await create_venue(client, admin, merchant["id"], district=PUDONG, name="浦东馆")
    await create_venue(client, admin, merchant["id"], district=XUHUI, name="徐汇馆")
    everything = (await client.get("/v1/venues")).json()
    assert {v["name_zh"] for v in everything} == {"浦东馆", "徐汇馆"}
    assert "daily_capacity" not in everything[0] and "contact_phone" not in everything[0]
    pudong = (await client.get(f"/v1/venues?district={PUDONG}&domain=culture")).json()
    assert [v["district_name_zh"] for v in pudong] == ["浦东新区"]
    assert (await client.get("/v1/venues?domain=transit")).json() == []
    assert_problem(await client.get("/v1/venues?domain=spa"), 400, "invalid-request")


T1 = uuid.uuid4()


async def _ledger_row(conn, venue, *, day, value_fen, code="T1", benefit_id=T1):
    await conn.execute(
        """
        INSERT INTO redemptions (id, kind, service_day, person_id, benefit_id, benefit_version, benefit_code,
                                 venue_id, merchant_id, jti, code_source, value_kind, value_fen)
        VALUES ($1, 'redemption', $2, $3, $4, 1, $5, $6, $7, $8, 'cj', 'free_entry', $9)
        """,
        uuid.uuid4(), day, uuid.uuid4(), benefit_id, code, uuid.UUID(venue["id"]), uuid.UUID(venue["merchant_id"]),
        uuid.uuid4().hex, value_fen,
    )


@both_profiles
async def test_merchant_views_json_csv_and_sealed_statement(app, client, conn, settings):
    from datetime import date

    admin = city(app)
    merchant = await create_merchant(client, admin)
    venue = await create_venue(client, admin, merchant["id"], name="=HYPERLINK(1)")
    for _ in range(3):
        await _ledger_row(conn, venue, day=date(2026, 10, 7), value_fen=2500)
    staff = tokens.auth_headers(app, tokens.staff(uuid.UUID(merchant["id"])))
    listed = (await client.get("/v1/merchant/redemptions?date_from=2026-10-01&date_to=2026-10-31", headers=staff)).json()
    assert len(listed["items"]) == 3 and {e["result"] for e in listed["items"]} == {"accepted"}
    as_csv = await client.get("/v1/merchant/redemptions", headers={**staff, "Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert len(rows) == 3 and rows[0]["benefit_code"] == "T1" and rows[0]["value_fen"] == "2500"
    daily = await client.get("/v1/merchant/reports/daily?date=2026-10-07", headers={**staff, "Accept": "text/csv"})
    [line] = list(csv.DictReader(io.StringIO(daily.content.decode("utf-8-sig"))))
    assert (line["net_count"], line["net_value_fen"]) == ("3", "7500")
    assert line["venue_name_zh"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    # Each CSV is an export of 重要数据, archived with who took it, which path and how many rows;
    # the JSON answers of the same routes are not exports.
    exports = await conn.fetch("SELECT actor_kind, actor_id, object_id, detail FROM audit_log WHERE action = 'export.csv' ORDER BY seq")
    assert [(e["actor_kind"], e["object_id"], e["detail"]["rows"]) for e in exports] == [
        ("staff", "/v1/merchant/redemptions", 3), ("staff", "/v1/merchant/reports/daily", 1),
    ]
    assert exports[1]["detail"]["query"] == {"date": "2026-10-07"}
    sealed = await client.get("/v1/merchant/statements/2026-10", headers=staff)
    assert sealed.status_code == 200, sealed.text
    document = sealed.json()
    assert document["statement"]["net_value_fen"] == 7500
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert verify_sealed(document, jwks)
    # The same check with nothing of ours: pyjwt, the published JWK and sorted-key JSON.
    import json

    import jwt

    header, _, signature = document["seal"]["jws"].split(".")
    payload = json.dumps(document["statement"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    [jwk] = [k for k in jwks["keys"] if k["kid"] == document["seal"]["kid"]]
    import base64

    attached = f"{header}.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.{signature}"  # RFC 7515 App. F
    if settings.crypto_profile == "gm":
        # SM2 is not in PyJWT's defaults: the registered "SM2" (identity.sm2jws) and the JWK's point.
        from identity import sm2_from_jwk

        assert document["seal"]["alg"] == jwk["alg"] == "SM2" and jwk["crv"] == "SM2"
        decoded = jwt.api_jws.decode_complete(attached, sm2_from_jwk(jwk), algorithms=["SM2"])
    else:
        assert document["seal"]["alg"] == "EdDSA"
        decoded = jwt.api_jws.PyJWS().decode_complete(attached, jwt.PyJWK(jwk).key, algorithms=["EdDSA"])
    assert decoded["header"]["kid"] == jwk["kid"]
    document["statement"]["net_value_fen"] = 7501
    assert not verify_sealed(document, jwks)
    assert_problem(await client.get("/v1/merchant/statements/2026-13", headers=staff), 400, "invalid-period")
    assert (await client.get("/v1/merchant/redemptions", headers=admin)).status_code == 403
