"""Every guard against every principal kind, on a small app with the real middleware."""

from __future__ import annotations

import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.testing import AsyncTestClient

from api import guards
from api.auth import auth_middleware
from api.errors import exception_handlers
from identity import Principal
from identity.tokens import ACCESS_KINDS
from tests.tokens import access_token, admin, device, staff, veteran

GUARDS = {
    "veteran": [guards.requires_veteran],
    "staff": [guards.requires_staff],
    "admin": [guards.requires_admin],
    "device": [guards.requires_device],
    "device_or_staff": [guards.requires_device_or_staff],
    "city_or_auditor": [guards.requires_admin_role("city", "auditor")],
    "district": [guards.requires_admin_role("district")],
}

ALLOWED = {
    "veteran": {"veteran"},
    "staff": {"staff"},
    "admin": {"city_admin", "district_admin", "auditor"},
    "device": {"device"},
    "device_or_staff": {"device", "staff"},
    "city_or_auditor": {"city_admin", "auditor"},
    "district": {"district_admin"},
}

PRINCIPALS = {
    "veteran": veteran(),
    "staff": staff(),
    "device": device(),
    "city_admin": admin("city"),
    "district_admin": admin("district", district="310104"),
    "auditor": admin("auditor"),
}


def _route(name: str):
    @get(f"/{name}", guards=GUARDS[name], name=name, operation_id=f"Guarded_{name}")
    async def handler(principal: NamedDependency[Principal]) -> dict:
        return {"kind": principal.kind, "subject": str(principal.subject)}

    return handler


@pytest.fixture(scope="module")
async def guarded(memory_keyring):
    app = Litestar(
        route_handlers=[_route(name) for name in GUARDS],
        middleware=[auth_middleware],
        exception_handlers=exception_handlers,
        dependencies={"principal": Provide(guards.provide_principal, sync_to_thread=False)},
    )
    app.state.keyring = memory_keyring
    # The app's real lifecycle checks need PostgreSQL and Redis, which this bare app has not: the
    # guards are tested alone (every kind passes), and the hook tests below install their own.
    app.state.principal_checks = {kind: _always_active for kind in ACCESS_KINDS}
    async with AsyncTestClient(app=app) as client:
        yield client


async def _always_active(principal: Principal, state) -> bool:
    return True


async def test_guard_matrix(guarded, memory_keyring):
    for route, allowed in ALLOWED.items():
        assert (await guarded.get(f"/{route}")).status_code == 401
        for who, principal in PRINCIPALS.items():
            token = access_token(memory_keyring, principal)
            response = await guarded.get(f"/{route}", headers={"Authorization": f"Bearer {token}"})
            expected = 200 if who in allowed else 403
            assert response.status_code == expected, (route, who, response.text)
            if expected == 200:
                assert response.json() == {"kind": principal.kind, "subject": str(principal.subject)}
            else:
                assert response.headers["content-type"].startswith("application/problem+json")


async def test_principal_check_hook_revokes_live_tokens(guarded, memory_keyring):
    revoked = device()
    token = access_token(memory_keyring, revoked)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await guarded.get("/device", headers=headers)).status_code == 200

    seen_generations = []

    async def still_active(principal: Principal, state) -> bool:
        seen_generations.append(principal.secret_generation)
        return principal.subject != revoked.subject

    checks = guarded.app.state.principal_checks
    registered = checks["device"]
    checks["device"] = still_active
    try:
        response = await guarded.get("/device", headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "urn:chongjun:problem:invalid-token"
        other = access_token(memory_keyring, device())
        assert (await guarded.get("/device", headers={"Authorization": f"Bearer {other}"})).status_code == 200
        # Other kinds are not affected by the device check.
        staff_token = access_token(memory_keyring, staff())
        assert (await guarded.get("/staff", headers={"Authorization": f"Bearer {staff_token}"})).status_code == 200
        # The hook sees the secret generation the token carries (a roll refuses older ones).
        assert seen_generations and set(seen_generations) == {1}
    finally:
        checks["device"] = registered


async def test_a_kind_without_a_lifecycle_check_is_refused(guarded, memory_keyring):
    """Fail closed: a token kind nobody registered a check for cannot skip revocation."""
    checks = guarded.app.state.principal_checks
    registered = checks.pop("staff")
    try:
        token = access_token(memory_keyring, staff())
        response = await guarded.get("/staff", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["type"] == "urn:chongjun:problem:invalid-token"
    finally:
        checks["staff"] = registered
