"""三员分立 on the routes and in the archive's reader.

- the security administrator manages admin accounts (create with a duty, reset, disable, move
  within the duty); nobody else reaches `/v1/admin/accounts`;
- the system administrator's configuration routes refuse the security and audit administrators:
  every write route of the app under `/v1/admin` (taken from the app's own route table, with the
  authorization matrix's bodies) answers them 403, so the audit administrator writes nothing and
  the security administrator changes no catalog, merchant, venue or device;
- every action of each duty is archived, and the archive's reader filters by duty: the audit
  administrator reads the system and security duties' actions (never the audit duty's own), the
  security administrator reads the audit duty's actions only, system administrators neither.
"""

from __future__ import annotations

import uuid

import identity
from identity import Principal
from tests.authz.matrix import EXPECT, PATH_PARAMS
from tests.authz.test_matrix import app_routes
from tests.factories.world import build_matrix_world, credit_code
from tests.tokens import auth_headers

PASSWORD = "Initial-Passw0rd-9"
_READS_BY_POST = {"POST /v1/admin/benefits/preview"}  # evaluates a draft rule, writes nothing: every admin may


async def _admin(conn, role: str, district: str | None = None) -> Principal:
    username = f"{role}-{uuid.uuid4().hex[:6]}"
    record, _ = await identity.create_account(
        conn, identity.NewAccount(kind="admin", username=username, password=PASSWORD, role=role, district=district)
    )
    return Principal(kind="admin", subject=record.id, role=role, district=district)


def _problem(response, status: int, slug: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.json()["type"] == "urn:chongjun:problem:" + slug, response.text


async def test_the_security_administrator_manages_admin_accounts_and_nobody_else_may(app, client, conn):
    security = auth_headers(app, await _admin(conn, "security"))
    body = {"username": "new.city", "password": PASSWORD, "role": "city"}
    made = await client.post("/v1/admin/accounts", json=body, headers=security)
    assert made.status_code == 201, made.text
    account = made.json()["account"]
    assert (account["duty"], account["role"], account["password_must_change"]) == ("system", "city", True)
    for role, district in (("city", None), ("district", "310104"), ("auditor", None)):
        other = auth_headers(app, await _admin(conn, role, district))
        for method, path, sent in (
            ("GET", "/v1/admin/accounts", None),
            ("POST", "/v1/admin/accounts", {**body, "username": f"x{role}"}),
            ("GET", f"/v1/admin/accounts/{account['id']}", None),
            ("PATCH", f"/v1/admin/accounts/{account['id']}", {"disabled": True}),
        ):
            _problem(await client.request(method, path, json=sent, headers=other), 403, "forbidden")
    assert await conn.fetchval("SELECT disabled_at FROM accounts WHERE id = $1", uuid.UUID(account["id"])) is None
    # Within the duty: city -> district; to another duty: refused (for the account's life).
    moved = await client.patch(f"/v1/admin/accounts/{account['id']}", json={"role": "district", "district": "310104"}, headers=security)
    assert moved.status_code == 200 and moved.json()["role"] == "district", moved.text
    _problem(await client.patch(f"/v1/admin/accounts/{account['id']}", json={"role": "auditor"}, headers=security), 409, "duty-conflict")
    _problem(
        await client.post("/v1/admin/accounts", json={**body, "username": "weak.one", "password": "aaaaaaaaaaaa"}, headers=security),
        422, "weak-password",
    )
    listed = await client.get("/v1/admin/accounts", headers=security)
    assert {a["duty"] for a in listed.json()["items"]} == {"system", "security", "audit"}
    actions = {r["action"] for r in await conn.fetch(
        "SELECT action FROM audit_log WHERE actor_role = 'security' AND object_id = $1", account["id"]
    )}
    assert actions == {"account.create", "admin.duty.assign", "account.role.change"}


async def test_the_security_and_audit_administrators_are_refused_on_every_configuration_write(app, client, conn, redis):
    world = await build_matrix_world(conn, redis, keyring=app.state.keyring)
    writes = [
        (key, route) for key, route in app_routes(app)
        if key.split(" ", 1)[0] in ("POST", "PUT", "PATCH", "DELETE")
        and key.split(" ", 1)[1].startswith("/v1/admin") and not key.split(" ", 1)[1].startswith("/v1/admin/accounts")
        and key not in _READS_BY_POST
    ]
    assert len(writes) >= 20
    before = await conn.fetchval("SELECT count(*) FROM audit_log")
    for role in ("security", "auditor"):
        headers = auth_headers(app, await _admin(conn, role))
        for key, route in writes:
            expect = EXPECT[key]
            path = route.path
            for name, definition in route.path_parameters.items():
                path = path.replace("{" + definition.full + "}", PATH_PARAMS[name](world))
            response = await client.request(
                key.split(" ", 1)[0], path, headers=headers, params=expect.query(world) if expect.query else None,
                json=expect.body(world) if expect.body else {},
            )
            assert response.status_code == 403, (role, key, response.status_code, response.text)
    # Nothing changed: the only entries since are the two admin accounts' own creation.
    added = await conn.fetch("SELECT action FROM audit_log ORDER BY seq OFFSET $1", before)
    assert sorted(r["action"] for r in added) == ["account.create", "account.create", "admin.duty.assign", "admin.duty.assign"]


async def _read(client, headers, **params) -> list[dict]:
    response = await client.get("/v1/admin/audit", params={"limit": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_every_duty_is_archived_and_read_by_the_duty_that_oversees_it(app, client, conn):
    security_principal = await _admin(conn, "security")
    city_principal = await _admin(conn, "city")
    auditor_principal = await _admin(conn, "auditor")
    security, city, auditor = (auth_headers(app, p) for p in (security_principal, city_principal, auditor_principal))
    # One action of each duty, each archived with its actor's role.
    made = await client.post("/v1/admin/accounts", json={"username": "ops.auditor", "password": PASSWORD, "role": "auditor"}, headers=security)
    assert made.status_code == 201, made.text
    merchant = await client.post(
        "/v1/admin/merchants", headers=city,
        json={"name": "新商户", "credit_code": credit_code("310115"), "district": "310115", "contact_name": "李", "contact_phone": "021-1234567"},
    )
    assert merchant.status_code == 201, merchant.text
    first = await _read(client, auditor)
    # The audit duty's own reading is an action too, archived, and the security duty reads it.
    read_by_auditor = await conn.fetch(
        "SELECT seq, detail FROM audit_log WHERE action = 'audit.read' AND actor_id = $1", str(auditor_principal.subject)
    )
    assert len(read_by_auditor) == 1 and read_by_auditor[0]["detail"]["entries"] == len(first)

    by_role = lambda items: {e["actor_role"] for e in items if e["actor_kind"] == "admin"}  # noqa: E731
    audit_view = await _read(client, auditor)
    assert {"security"} <= by_role(audit_view) and "auditor" not in by_role(audit_view)
    assert any(e["action"] == "account.create" and e["actor_role"] == "security" for e in audit_view)
    assert any(e["action"] == "merchant.create" and e["actor_role"] == "city" for e in audit_view)

    security_view = await _read(client, security)
    assert security_view and by_role(security_view) == {"auditor"}
    assert {e["seq"] for e in security_view} >= {r["seq"] for r in read_by_auditor}
    assert all(e["actor_kind"] == "admin" for e in security_view)

    city_view = await _read(client, city)
    assert not by_role(city_view) & {"security", "auditor"}
    # A single entry outside one's duty's view answers as a missing one.
    own_read = read_by_auditor[0]["seq"]
    assert (await client.get(f"/v1/admin/audit/entries/{own_read}", headers=auditor)).status_code == 404
    assert (await client.get(f"/v1/admin/audit/entries/{own_read}", headers=city)).status_code == 404
    assert (await client.get(f"/v1/admin/audit/entries/{own_read}", headers=security)).status_code == 200
    security_entry = next(e["seq"] for e in audit_view if e["actor_role"] == "security")
    assert (await client.get(f"/v1/admin/audit/entries/{security_entry}", headers=security)).status_code == 404
    assert (await client.get(f"/v1/admin/audit/entries/{security_entry}", headers=auditor)).status_code == 200
    # Filters only narrow: asking for the security duty's actions gives the security duty nothing.
    assert await _read(client, security, actor_id=str(security_principal.subject)) == []
