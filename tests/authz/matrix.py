"""The expectation table of the authorization matrix: who may succeed on which route.

HOW TO EXTEND (every engineer adding a route must): add one `EXPECT` entry per method and path
template exactly as Litestar prints it (`"GET /v1/admin/venues/{venue_id:uuid}"`), naming the
roles that may get a 2xx when they aim at the *victim* objects of `tests/factories/world.py`. Give a
`body` (and `query`) that would be valid for an entitled caller, so a refusal proves the scope
check and not the validator. A new path parameter needs an entry in `PATH_PARAMS` pointing at
a victim object (add the object to `World` if it is new). Set `public=True` only for answers
that may show the victim's ids to anyone (the public catalog).

Roles: anonymous, veteran (A, the victim's own records), other_veteran, other_device,
other_staff, other_district_admin, city_admin. A foreign role that is allowed (e.g. a district
admin listing their own district) must not see any victim id in the answer: the test checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.factories.world import ROLES, MatrixWorld as World

__all__ = ("ADMIN_ROLES", "EXPECT", "PATH_PARAMS", "Expect", "route_key")

EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
CITY = frozenset({"city_admin"})
ADMINS = frozenset({"city_admin", "other_district_admin"})
ADMIN_ROLES = ADMINS
STAFF = frozenset({"other_staff"})
DEVICE = frozenset({"other_device"})


@dataclass(frozen=True)
class Expect:
    allow: frozenset[str]
    body: Callable[[World], Any] | None = None
    query: Callable[[World], dict[str, str]] | None = None
    public: bool = False


def route_key(method: str, path: str) -> str:
    return f"{method} {path}"


PATH_PARAMS: dict[str, Callable[[World], str]] = {
    "merchant_id": lambda w: str(w.merchant_id),
    "venue_id": lambda w: str(w.venue_id),
    "device_id": lambda w: str(w.device_id),
    "account_id": lambda w: str(w.staff_id),
    "redemption_id": lambda w: str(w.redemption_id),
    "month": lambda w: w.service_day.strftime("%Y-%m"),
    "image": lambda w: w.extra["code_jti"] + ".png",
    "path": lambda w: "openapi.yaml",
    "benefit_id": lambda w: str(w.benefit_id),
    "version": lambda w: "1",
    "case_id": lambda w: str(w.extra["rating_case_id"]),
    "list_id": lambda w: "1",
    "name": lambda w: "scan.js",
    "page": lambda w: "benefits",
    "seq": lambda w: str(w.extra["audit_seq"]),
    "batch_id": lambda w: "00000000-0000-4000-8000-000000000013",  # exchange: no dead letter (404 for the city)
    "code": lambda w: "JS-SUFU",
}

_HOLDER_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}


def _draft() -> dict:
    from tests.factories.world import BENEFIT_DRAFT

    return dict(BENEFIT_DRAFT)


def _merchant_body(w: World) -> dict:
    from tests.factories.world import credit_code

    return {"name": "新商户", "credit_code": credit_code("310115"), "district": "310115", "contact_name": "李", "contact_phone": "021-1234567"}


def _venue_body(w: World) -> dict:
    return {"merchant_id": str(w.merchant_id), "name_zh": "新馆", "district": "310115", "address": "某路 2 号", "domain": "culture"}


def _staff_body(w: World) -> dict:
    import uuid

    return {"merchant_id": str(w.merchant_id), "username": f"new{uuid.uuid4().hex[:8]}", "password": "correct horse battery"}


EXPECT: dict[str, Expect] = {
    # --- operations and public documents -------------------------------------------------------
    "GET /health": Expect(EVERYONE),
    "GET /ready": Expect(EVERYONE),
    "GET /metrics": Expect(EVERYONE),
    "GET /schema": Expect(EVERYONE, public=True),
    # The faces (api/faces.py): static pages and assets, the same bytes for everyone.
    "GET /scan": Expect(EVERYONE, public=True),
    "GET /scan-sw.js": Expect(EVERYONE, public=True),  # the scanner's service worker
    "GET /console": Expect(EVERYONE, public=True),
    "GET /console/{page:str}": Expect(EVERYONE, public=True),
    "GET /faces/{name:str}": Expect(EVERYONE, public=True),
    "GET /schema/openapi.json": Expect(EVERYONE, public=True),
    "GET /schema/redoc": Expect(EVERYONE, public=True),
    "GET /schema/redoc.standalone.js": Expect(EVERYONE, public=True),
    "GET /schema/{path:str}": Expect(EVERYONE, public=True),
    "GET /.well-known/jwks.json": Expect(EVERYONE),
    # --- auth and the veteran's codes ----------------------------------------------------------
    "POST /v1/auth/staff": Expect(NOBODY, body=lambda w: {"username": "nobody", "password": "wrong password"}),
    "POST /v1/auth/refresh": Expect(NOBODY, body=lambda w: {"refresh_token": "not-a-refresh-token"}),
    "POST /v1/auth/logout": Expect(EVERYONE, body=lambda w: {"refresh_token": "not-a-refresh-token"}),  # no oracle: always 204
    "POST /v1/auth/password": Expect(NOBODY, body=lambda w: {"username": "nobody", "password": "wrong password",
                                                             "new_password": "Another-Passw0rd"}),
    "POST /v1/me/codes": Expect(frozenset({"veteran", "other_veteran"}), body=lambda w: {}),  # one's own code
    "GET /v1/me/codes/{image:str}": Expect(frozenset({"veteran"})),
    # --- the electronic 优待证 and its public status list ----------------------------------------
    "POST /v1/me/credential": Expect(frozenset({"veteran", "other_veteran"}), body=lambda w: {"holder_jwk": _HOLDER_JWK}),
    "GET /v1/status-lists/{list_id:int}": Expect(EVERYONE),
    # --- the 长三角 trust list: public download, city admins manage ------------------------------
    "GET /v1/trust-list": Expect(EVERYONE),
    "GET /v1/admin/issuers": Expect(ADMINS),
    "POST /v1/admin/issuers": Expect(CITY, body=lambda w: {"code": "JS-SUFU", "name": "苏服码", "province": "320000",
                                                          "kind": "online", "code_prefix": "SFM1:",
                                                          "verify_url": "https://sufu.example/verify"}),
    "POST /v1/admin/issuers/{code:str}/status": Expect(CITY, body=lambda w: {"status": "suspended"}),
    # --- people: 随申码 login, one's own profile, the roster, the simulated city platform -------
    "POST /v1/auth/suishen": Expect(NOBODY, body=lambda w: {"code": "SSM1:not.a.code"}),
    "GET /v1/me": Expect(frozenset({"veteran", "other_veteran"})),  # one's own profile only
    "GET /v1/me/benefits": Expect(frozenset({"veteran", "other_veteran"})),  # one's own list only
    # --- 好差评: one's own history and ratings; the admins' queue of 差评 cases -------------------
    "GET /v1/me/redemptions": Expect(frozenset({"veteran", "other_veteran"})),  # one's own history only
    "GET /v1/me/redemptions/{redemption_id:uuid}": Expect(frozenset({"veteran"})),
    # Veteran A rated R when the world was built, so even A gets 409 here: nobody else may get past 404.
    "POST /v1/me/redemptions/{redemption_id:uuid}/rating": Expect(frozenset({"veteran"}), body=lambda w: {"stars": 5, "comment": "好"}),
    "GET /v1/admin/ratings": Expect(ADMINS, query=lambda w: {"status": "open"}),  # a district admin: their district's only
    "POST /v1/admin/ratings/{case_id:uuid}/reply": Expect(CITY, body=lambda w: {"reply": "已约谈场馆整改"}),
    # --- 第二十三条 statistics (a district admin: their district's figures); staff read their ratings
    "GET /v1/admin/stats": Expect(ADMINS),
    "GET /v1/merchant/ratings": Expect(STAFF),
    # --- admin accounts: the security administrator's only (tests/duties/test_duty_routes.py);
    # no role of the matrix holds the security duty, so nobody here may.
    "GET /v1/admin/accounts": Expect(NOBODY),
    "POST /v1/admin/accounts": Expect(NOBODY, body=lambda w: {"username": "new.admin", "password": "Initial-Passw0rd-9", "role": "city"}),
    "GET /v1/admin/accounts/{account_id:uuid}": Expect(NOBODY),
    "PATCH /v1/admin/accounts/{account_id:uuid}": Expect(NOBODY, body=lambda w: {"disabled": True}),
    # --- the audit archive: every admin reads (a district admin their district's entries) --------
    "GET /v1/admin/audit": Expect(ADMINS),
    "GET /v1/admin/audit/entries/{seq:int}": Expect(CITY),
    "GET /v1/admin/audit/checkpoints": Expect(ADMINS),
    "GET /v1/admin/audit/checkpoints/latest": Expect(ADMINS),
    "GET /v1/admin/audit/status": Expect(ADMINS),
    "POST /v1/admin/audit/checkpoints": Expect(CITY),
    "GET /v1/admin/audit/proofs/inclusion": Expect(CITY, query=lambda w: {"seq": str(w.extra["audit_seq"])}),
    "GET /v1/admin/audit/proofs/consistency": Expect(
        ADMINS, query=lambda w: {"first": str(w.extra["checkpoint_size"]), "second": str(w.extra["checkpoint_size"])}
    ),
    # 数据汇聚 (issue 13): city-wide, so district admins are refused
    "GET /v1/admin/exchange/status": Expect(CITY),
    "GET /v1/admin/exchange/dead-letters": Expect(CITY),
    "POST /v1/admin/exchange/dead-letters/{batch_id:uuid}/resend": Expect(CITY),
    "GET /v1/admin/quality": Expect(ADMINS),  # a district admin: their district's warnings only
    # The roster is a text/csv body: the JSON the matrix sends is refused (415) after the guard.
    "POST /v1/admin/people/import": Expect(CITY),
    "GET /dev-city/.well-known/jwks.json": Expect(EVERYONE),
    # --- benefits catalog: city admins write, every admin reads, everyone sees the active catalog -
    "GET /v1/benefits": Expect(EVERYONE, public=True),
    "GET /v1/benefits/{benefit_id:uuid}": Expect(EVERYONE, public=True),
    # Benefits are city-wide; their venue ids are the public catalog's (GET /v1/venues), not a leak.
    "GET /v1/admin/benefits": Expect(ADMINS, public=True),
    "POST /v1/admin/benefits": Expect(CITY, body=lambda w: {**_draft(), "code": "C99"}),
    "POST /v1/admin/benefits/preview": Expect(
        ADMINS, body=lambda w: {"benefit": _draft(), "person": {"categories": ["VETERAN"]}}
    ),
    "GET /v1/admin/benefits/{benefit_id:uuid}": Expect(ADMINS, public=True),
    "GET /v1/admin/benefits/{benefit_id:uuid}/versions/{version:int}": Expect(ADMINS),
    "PUT /v1/admin/benefits/{benefit_id:uuid}": Expect(CITY, body=lambda w: _draft()),
    "PATCH /v1/admin/benefits/{benefit_id:uuid}": Expect(CITY, body=lambda w: {"name_en": "Free bus"}),
    "POST /v1/admin/benefits/{benefit_id:uuid}/status": Expect(CITY, body=lambda w: {"status": "paused"}),
    "PUT /v1/admin/benefits/{benefit_id:uuid}/venues": Expect(CITY, body=lambda w: {"venue_ids": [str(w.venue_id)]}),
    # --- merchants: admin ----------------------------------------------------------------------
    "GET /v1/admin/merchants": Expect(ADMINS),
    "POST /v1/admin/merchants": Expect(CITY, body=_merchant_body),
    "GET /v1/admin/merchants/{merchant_id:uuid}": Expect(CITY),
    "GET /v1/admin/merchants/{merchant_id:uuid}/statements/{month:str}": Expect(CITY),
    "PATCH /v1/admin/merchants/{merchant_id:uuid}": Expect(CITY, body=lambda w: {"contact_name": "改"}),
    "GET /v1/admin/venues": Expect(ADMINS),
    "POST /v1/admin/venues": Expect(CITY, body=_venue_body),
    "GET /v1/admin/venues/{venue_id:uuid}": Expect(CITY),
    "PATCH /v1/admin/venues/{venue_id:uuid}": Expect(CITY, body=lambda w: {"address": "某路 3 号"}),
    "GET /v1/admin/devices": Expect(ADMINS),
    "POST /v1/admin/devices": Expect(CITY, body=lambda w: {"venue_id": str(w.venue_id), "label": "新闸机"}),
    "GET /v1/admin/devices/{device_id:uuid}": Expect(CITY),
    "POST /v1/admin/devices/{device_id:uuid}/revoke": Expect(CITY),
    "POST /v1/admin/devices/{device_id:uuid}/secret": Expect(CITY),
    "GET /v1/admin/devices/{device_id:uuid}/setup-qr.png": Expect(CITY),
    "GET /v1/admin/staff": Expect(ADMINS),
    "POST /v1/admin/staff": Expect(CITY, body=_staff_body),
    "GET /v1/admin/staff/{account_id:uuid}": Expect(CITY),
    "PATCH /v1/admin/staff/{account_id:uuid}": Expect(CITY, body=lambda w: {"role": "clerk"}),
    # --- merchants: the back office (other_staff may use it for their own merchant only) -------
    "GET /v1/merchant/venues": Expect(STAFF),
    "GET /v1/merchant/venues/{venue_id:uuid}": Expect(NOBODY),
    "GET /v1/merchant/devices": Expect(STAFF),
    "POST /v1/merchant/devices": Expect(NOBODY, body=lambda w: {"venue_id": str(w.venue_id), "label": "新闸机"}),
    "GET /v1/merchant/devices/{device_id:uuid}": Expect(NOBODY),
    "POST /v1/merchant/devices/{device_id:uuid}/revoke": Expect(NOBODY),
    "POST /v1/merchant/devices/{device_id:uuid}/secret": Expect(NOBODY),
    "GET /v1/merchant/devices/{device_id:uuid}/setup-qr.png": Expect(NOBODY),
    "GET /v1/merchant/redemptions": Expect(NOBODY, query=lambda w: {"venue_id": str(w.venue_id)}),
    "GET /v1/merchant/reports/daily": Expect(STAFF, query=lambda w: {"date": w.service_day.isoformat()}),
    "GET /v1/merchant/statements/{month:str}": Expect(NOBODY, query=lambda w: {"venue_id": str(w.venue_id)}),
    # --- devices and the public catalog --------------------------------------------------------
    "POST /v1/devices/token": Expect(NOBODY, body=lambda w: {"device_id": str(w.device_id), "secret": "not-the-secret"}),
    "GET /v1/devices/me": Expect(DEVICE),
    # Scanning for the victim's venue: only that venue's devices and its merchant's staff may.
    "POST /v1/scans": Expect(NOBODY, body=lambda w: {"code": "CJ1:x", "venue_id": str(w.venue_id)}),
    "POST /v1/scans/{redemption_id:uuid}/reversal": Expect(NOBODY, body=lambda w: {"reason": "误扫"}),
    # A device's own bundle and its own offline decisions: an item naming the victim's venue is
    # answered `rejected` (venue_not_allowed) and kept at the caller's venue, never the victim's.
    "GET /v1/scans/offline-bundle": Expect(DEVICE),
    "POST /v1/scans/offline": Expect(DEVICE, body=lambda w: {"scans": [{
        "local_id": "matrix-1", "code": "CJ1:x", "venue_id": str(w.venue_id), "decided_at": "2026-12-01T08:00:00+00:00"}]}),
    "GET /v1/venues": Expect(EVERYONE, public=True),
}
