"""Routes of the merchants package: admin CRUD, the merchant back office, scanner devices, venues.

Guards say which kind of caller may enter; which objects they may touch is decided in
`merchants` with the principal passed in (a foreign object answers 404).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import msgspec
from litestar import Controller, Litestar, Request, Response, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

import merchants
from api.deps import AppSettings, Conn, CurrentPrincipal, DeviceKey, Keyring, PublicUrl, ReadConn, Redis
from api.guards import AdminRoutes, MerchantRoutes, PublicRoutes, requires_admin_role, requires_device
from api.paging import District, Page, PageRequest, Paging
from foundation.audit import write_audit
from api.spreadsheets import CSV, csv_document
from foundation.settings import Settings
from identity import Principal
from benefits.redemption import DailyReport, RedemptionEntry, SealedStatement, reports
from merchants import (
    CreatedStaff,
    Device,
    DeviceCreate,
    DeviceIdentity,
    DeviceToken,
    DeviceTokenRequest,
    Domain,
    Merchant,
    MerchantCreate,
    MerchantUpdate,
    ProvisionedDevice,
    PublicVenue,
    StaffAccount,
    StaffCreate,
    StaffUpdate,
    Venue,
    VenueCreate,
    VenueUpdate,
)

__all__ = (
    "AdminDeviceController",
    "AdminMerchantController",
    "AdminStaffController",
    "AdminVenueController",
    "DeviceController",
    "MerchantPortalController",
    "PublicVenueController",
    "device_principal_check",
    "merchant_keys",
)

# The year is bounded here, so 0000-01 or 9999-12 (a month whose end no date can hold) is a 400 before
# anything runs; which months exist and have begun is the statement's own rule (400 invalid-period).
Month = Annotated[
    str, PathParameter(pattern=r"^20[0-9]{2}-[0-9]{2}$", description="YYYY-MM, a month of 2000-2099 (Asia/Shanghai)")
]
PNG = "image/png"

_writers = [requires_admin_role("city", "district")]


async def device_principal_check(principal: Principal, state: Any) -> bool:
    """The device tokens' lifecycle check (`app.state.principal_checks["device"]`): a revoked
    device's token dies within a second, and so does a token of a secret since rolled."""
    try:
        await merchants.check_device(
            principal.subject, secret_generation=principal.secret_generation, pool=state.pool, redis=state.redis
        )
    except merchants.DeviceRevoked:
        return False
    return True


@asynccontextmanager
async def merchant_keys(app: Litestar) -> AsyncIterator[None]:
    """Read the device-secret and e-seal keys at start: production without them does not start."""
    merchants.require_keys(app.state.settings)
    yield


def _device_key(settings: AppSettings) -> bytes:
    return merchants.device_hmac_key(settings)


# --- CSV -----------------------------------------------------------------------------------------


def _fields(kind: type) -> list[str]:
    return list(kind.__struct_fields__)


def _report_rows(venues: list[Any], **fixed: Any) -> list[dict[str, Any]]:
    """One row per venue and benefit; then, where the JSON has `rejected` counts (the daily
    report), one row per venue and refusal reason, its benefit columns empty."""
    rows = []
    for venue in msgspec.to_builtins(venues):
        where = {**fixed, "venue_id": venue["venue_id"], "venue_name_zh": venue["venue_name_zh"]}
        rows += [{**where, **line} for line in venue["lines"]]
        rows += [{**where, "rejected_reason": r, "rejected": n} for r, n in sorted(venue.get("rejected", {}).items())]
    return rows


_LINE_COLUMNS = ["venue_id", "venue_name_zh", "benefit_id", "benefit_code", "benefit_name_zh", "redemptions", "reversals", "net_count", "net_admitted", "net_value_fen"]
_REFUSAL_COLUMNS = ["rejected_reason", "rejected"]


async def negotiated(request: Request, value: Any, conn: asyncpg.Connection | None, principal: Principal) -> Response:
    """JSON by default; CSV when the client's Accept header prefers text/csv.

    A CSV is an export (重要数据 leaving the system as a file, GB/T 22239 安全审计): each one is
    archived (`export.csv`: who, which path, how many rows), in the request's transaction, or,
    for a route that read on `read_conn` (`conn` None), in a transaction of its own on the
    primary, committed before the file is sent."""
    if request.accept.best_match(["application/json", "text/csv"], default="application/json") != "text/csv":
        return Response(value)
    headers = None
    if isinstance(value, Page):
        kind = type(value.items[0]) if value.items else None
        columns = _fields(kind) if kind else ["id"]
        headers = {"X-Next-Cursor": value.next_cursor} if value.next_cursor else None
        rows = msgspec.to_builtins(value.items)
    elif isinstance(value, DailyReport):
        rows = _report_rows(value.venues, date=value.date.isoformat())
        columns = ["date", *_LINE_COLUMNS, *_REFUSAL_COLUMNS]
    elif isinstance(value, SealedStatement):
        # The CSV is a convenience copy; the sealed JSON is the settlement document.
        rows = _report_rows(value.statement.venues, month=value.statement.month)
        columns = ["month", *_LINE_COLUMNS]
        headers = {"X-Statement-Id": value.statement.statement_id}
    else:
        return Response(value)
    entry = {
        "actor_kind": principal.kind, "actor_id": str(principal.subject), "actor_role": principal.role,
        "actor_district": principal.district, "action": "export.csv", "object_kind": "export",
        "object_id": request.url.path, "district": principal.district,
        "detail": {"rows": len(rows), "query": dict(request.query_params.items())},
    }
    if conn is not None:
        await write_audit(conn, **entry)
    else:
        async with request.app.state.pool.acquire() as primary, primary.transaction():
            await write_audit(primary, **entry)
    return Response(csv_document(rows, columns), media_type=CSV, headers=headers)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """`answer`: `await answer(value)` is `negotiated(request, value, conn, principal)` for this request."""

    request: Request
    conn: asyncpg.Connection
    principal: Principal

    async def __call__(self, value: Any) -> Response:
        return await negotiated(self.request, value, self.conn, self.principal)

    async def page(self, list_page: Callable[..., Awaitable[Page[Any]]], paging: PageRequest, **filters: Any) -> Response:
        """The page `list_page(conn, principal, limit=, cursor=, **filters)` answers for this caller, negotiated."""
        return await self(await list_page(self.conn, self.principal, limit=paging.limit, cursor=paging.cursor, **filters))


def provide_answer(request: Request, conn: Conn, principal: CurrentPrincipal) -> Negotiated:
    return Negotiated(request, conn, principal)


Answer = NamedDependency[Negotiated]
_ANSWER = {"answer": Provide(provide_answer, sync_to_thread=False)}


async def _statement(public_url: str, conn, principal, settings: Settings, month: str, venue_id, merchant_id) -> SealedStatement:
    return await reports.monthly_statement(
        conn, principal, month, key=merchants.seal_key(settings), venue_id=venue_id, merchant_id=merchant_id,
        jwks_url=public_url + "/.well-known/jwks.json",
        reversal_window_seconds=settings.reversal_window_seconds,
    )


# --- admin ---------------------------------------------------------------------------------------


class _AdminMerchantsRoutes(AdminRoutes):
    """What every admin controller of this package shares: its OpenAPI tag and the CSV answer."""

    dependencies = _ANSWER
    tags = ["admin: merchants"]


class AdminMerchantController(_AdminMerchantsRoutes):
    path = "/v1/admin/merchants"

    @get("/", operation_id="AdminListMerchants", summary="Merchants in the admin's scope (paged; CSV with Accept: text/csv)")
    async def list_merchants(self, answer: Answer, paging: Paging) -> Response[Page[Merchant]]:
        return await answer.page(merchants.list_merchants, paging)

    @post("/", operation_id="AdminCreateMerchant", guards=_writers, status_code=HTTP_201_CREATED, summary="Onboard a merchant")
    async def create_merchant(
        self, data: JSONBody[MerchantCreate], conn: Conn, principal: CurrentPrincipal
    ) -> Merchant:
        return await merchants.create_merchant(conn, principal, data)

    @get("/{merchant_id:uuid}", operation_id="AdminGetMerchant", summary="One merchant")
    async def get_merchant(
        self, merchant_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal
    ) -> Merchant:
        return await merchants.get_merchant(conn, principal, merchant_id)

    @get(
        "/{merchant_id:uuid}/statements/{month:str}", operation_id="AdminMerchantStatement",
        summary="A merchant's sealed monthly statement (district admins: its venues in their district)",
    )
    async def statement(
        self, answer: Answer, merchant_id: FromPath[UUID], month: Month, conn: Conn,
        principal: CurrentPrincipal, settings: AppSettings, public_url: PublicUrl,
        venue_id: FromQuery[UUID | None] = None,
    ) -> Response[SealedStatement]:
        return await answer(await _statement(public_url, conn, principal, settings, month, venue_id, merchant_id))

    @patch("/{merchant_id:uuid}", operation_id="AdminUpdateMerchant", guards=_writers, summary="Change a merchant (suspending refuses its devices)")
    async def update_merchant(
        self, merchant_id: FromPath[UUID], data: JSONBody[MerchantUpdate], conn: Conn,
        redis: Redis, principal: CurrentPrincipal,
    ) -> Merchant:
        return await merchants.update_merchant(conn, redis, principal, merchant_id, data)


class AdminVenueController(_AdminMerchantsRoutes):
    path = "/v1/admin/venues"

    @get("/", operation_id="AdminListVenues", summary="Venues in the admin's scope (paged; CSV with Accept: text/csv)")
    async def list_venues(
        self, answer: Answer, paging: Paging, merchant_id: FromQuery[UUID | None] = None
    ) -> Response[Page[Venue]]:
        return await answer.page(merchants.list_venues, paging, merchant_id=merchant_id)

    @post("/", operation_id="AdminCreateVenue", guards=_writers, status_code=HTTP_201_CREATED, summary="Create a venue")
    async def create_venue(
        self, data: JSONBody[VenueCreate], conn: Conn, principal: CurrentPrincipal
    ) -> Venue:
        return await merchants.create_venue(conn, principal, data)

    @get("/{venue_id:uuid}", operation_id="AdminGetVenue", summary="One venue")
    async def get_venue(self, venue_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal) -> Venue:
        return await merchants.get_venue(conn, principal, venue_id)

    @patch("/{venue_id:uuid}", operation_id="AdminUpdateVenue", guards=_writers, summary="Change a venue (closing it refuses its devices)")
    async def update_venue(
        self, venue_id: FromPath[UUID], data: JSONBody[VenueUpdate], conn: Conn,
        redis: Redis, principal: CurrentPrincipal,
    ) -> Venue:
        return await merchants.update_venue(conn, redis, principal, venue_id, data)


def _audience_id(name: str):
    """An operation id per mounting: AdminListDevices under /v1/admin, MerchantListDevices under /v1/merchant."""

    def create(_handler: Any, _method: Any, components: list[Any]) -> str:
        audience = "Admin" if "admin" in components else "Merchant"
        return audience + name

    return create


class _DeviceRoutes(Controller):
    """Device management shared by admins and staff; the service scopes it to the caller."""

    dependencies = {**_ANSWER, "device_key": Provide(_device_key, sync_to_thread=False)}

    @get("/", operation_id=_audience_id("ListDevices"), summary="Devices in the caller's scope (paged; CSV with Accept: text/csv)")
    async def list_devices(
        self, answer: Answer, paging: Paging, venue_id: FromQuery[UUID | None] = None
    ) -> Response[Page[Device]]:
        return await answer.page(merchants.list_devices, paging, venue_id=venue_id)

    @post("/", status_code=HTTP_201_CREATED, operation_id=_audience_id("ProvisionDevice"), summary="Provision a scanner for a venue: the secret is shown once")
    async def provision(
        self, data: JSONBody[DeviceCreate], conn: Conn,
        redis: Redis, principal: CurrentPrincipal, device_key: DeviceKey, public_url: PublicUrl,
    ) -> ProvisionedDevice:
        return await merchants.provision_device(conn, redis, principal, data, hmac_key=device_key, api_base_url=public_url)

    @get("/{device_id:uuid}", operation_id=_audience_id("GetDevice"), summary="One device")
    async def get_device(self, device_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal) -> Device:
        return await merchants.get_device(conn, principal, device_id)

    @post("/{device_id:uuid}/revoke", status_code=HTTP_200_OK, operation_id=_audience_id("RevokeDevice"), summary="Revoke a device: its tokens stop within a second")
    async def revoke(
        self, device_id: FromPath[UUID], conn: Conn, redis: Redis,
        principal: CurrentPrincipal,
    ) -> Device:
        return await merchants.revoke_device(conn, redis, principal, device_id)

    @post("/{device_id:uuid}/secret", status_code=HTTP_200_OK, operation_id=_audience_id("RollDeviceSecret"), summary="Roll a device's secret: the new one is shown once")
    async def roll(
        self, device_id: FromPath[UUID], conn: Conn,
        redis: Redis, principal: CurrentPrincipal, device_key: DeviceKey, public_url: PublicUrl,
    ) -> ProvisionedDevice:
        return await merchants.roll_device_secret(
            conn, redis, principal, device_id, hmac_key=device_key, api_base_url=public_url
        )

    @get("/{device_id:uuid}/setup-qr.png", media_type=PNG, operation_id=_audience_id("GetDeviceSetupQr"), summary="The setup QR of a new or rolled device: served once, within 10 minutes")
    async def setup_qr(
        self, device_id: FromPath[UUID], conn: Conn, redis: Redis,
        principal: CurrentPrincipal,
    ) -> Response[bytes]:
        png = await merchants.setup_qr_png(conn, redis, principal, device_id)
        return Response(png, media_type=PNG, headers={"Cache-Control": "no-store"})


class AdminDeviceController(AdminRoutes, _DeviceRoutes):
    path = "/v1/admin/devices"
    tags = _AdminMerchantsRoutes.tags


class AdminStaffController(_AdminMerchantsRoutes):
    path = "/v1/admin/staff"

    @get("/", operation_id="AdminListStaff", summary="Staff accounts in the admin's scope (paged)")
    async def list_staff(
        self, answer: Answer, paging: Paging, merchant_id: FromQuery[UUID | None] = None
    ) -> Response[Page[StaffAccount]]:
        return await answer.page(merchants.list_staff, paging, merchant_id=merchant_id)

    @post("/", operation_id="AdminCreateStaff", guards=_writers, status_code=HTTP_201_CREATED, summary="Create a staff account for a merchant")
    async def create_staff(
        self, data: JSONBody[StaffCreate], conn: Conn, principal: CurrentPrincipal, keyring: Keyring
    ) -> CreatedStaff:
        return await merchants.create_staff(conn, principal, data, secrets=keyring.secrets)

    @get("/{account_id:uuid}", operation_id="AdminGetStaff", summary="One staff account")
    async def get_staff(
        self, account_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal
    ) -> StaffAccount:
        return await merchants.get_staff(conn, principal, account_id)

    @patch("/{account_id:uuid}", operation_id="AdminUpdateStaff", guards=_writers, summary="Change a staff account's role or disable it")
    async def update_staff(
        self, account_id: FromPath[UUID], data: JSONBody[StaffUpdate], conn: Conn,
        principal: CurrentPrincipal, redis: Redis,
    ) -> StaffAccount:
        return await merchants.update_staff(conn, principal, account_id, data, redis=redis)


# --- merchant back office ------------------------------------------------------------------------


class MerchantDeviceController(MerchantRoutes, _DeviceRoutes):
    path = "/v1/merchant/devices"


class MerchantPortalController(MerchantRoutes):
    path = "/v1/merchant"
    dependencies = _ANSWER

    @get("/venues", operation_id="MerchantListVenues", summary="The merchant's venues (paged)")
    async def list_venues(self, answer: Answer, paging: Paging) -> Response[Page[Venue]]:
        return await answer.page(merchants.list_venues, paging)

    @get("/venues/{venue_id:uuid}", operation_id="MerchantGetVenue", summary="One of the merchant's venues")
    async def get_venue(self, venue_id: FromPath[UUID], conn: Conn, principal: CurrentPrincipal) -> Venue:
        return await merchants.get_venue(conn, principal, venue_id)

    @get("/redemptions", operation_id="MerchantListRedemptions", summary="Scans at the merchant's venues, newest first (paged; CSV)")
    async def list_redemptions(
        self, request: Request, read_conn: ReadConn, principal: CurrentPrincipal,
        paging: Paging, date_from: FromQuery[date | None] = None, date_to: FromQuery[date | None] = None,
        venue_id: FromQuery[UUID | None] = None, benefit_id: FromQuery[UUID | None] = None,
        result: Annotated[str | None, QueryParameter(pattern="^(accepted|reversed|rejected|conflict)$")] = None,
    ) -> Response[Page[RedemptionEntry]]:
        page = await reports.list_redemptions(
            read_conn, principal, limit=paging.limit, cursor=paging.cursor, day_from=date_from, day_to=date_to,
            venue_id=venue_id, benefit_id=benefit_id, result=result,
        )
        return await negotiated(request, page, None, principal)

    @get("/reports/daily", operation_id="MerchantDailyReport", summary="One service day per venue and benefit (CSV with Accept: text/csv)")
    async def daily_report(
        self, request: Request, read_conn: ReadConn, principal: CurrentPrincipal,
        day: Annotated[date, QueryParameter(name="date", description="Service day, Asia/Shanghai")],
    ) -> Response[DailyReport]:
        return await negotiated(request, await reports.daily_report(read_conn, principal, day), None, principal)

    @get("/statements/{month:str}", operation_id="MerchantMonthlyStatement", summary="Monthly settlement statement per venue, sealed (Ed25519 detached JWS)")
    async def statement(
        self, answer: Answer, month: Month, conn: Conn,
        principal: CurrentPrincipal, settings: AppSettings, public_url: PublicUrl,
        venue_id: FromQuery[UUID | None] = None,
    ) -> Response[SealedStatement]:
        return await answer(await _statement(public_url, conn, principal, settings, month, venue_id, None))


# --- devices and the public ----------------------------------------------------------------------


class DeviceController(Controller):
    path = "/v1/devices"
    tags = ["devices"]

    @post(
        "/token", operation_id="DeviceToken", status_code=HTTP_200_OK, opt={"exclude_from_auth": True},
        summary="Exchange a device's id and secret for a short-lived device token",
    )
    async def token(
        self, data: JSONBody[DeviceTokenRequest], conn: Conn, settings: AppSettings, keyring: Keyring
    ) -> DeviceToken:
        return await merchants.issue_device_token(
            conn, data, hmac_key=merchants.device_hmac_key(settings), keyring=keyring
        )

    @get("/me", operation_id="DeviceMe", guards=[requires_device], summary="The calling device, its venue and merchant")
    async def me(self, conn: Conn, principal: CurrentPrincipal) -> DeviceIdentity:
        return await merchants.device_identity(conn, principal)


class PublicVenueController(PublicRoutes):
    path = "/v1/venues"
    tags = ["public"]

    @get("/", operation_id="ListPublicVenues", summary="Open venues of active merchants, by domain and district (unpaged)")
    async def list_venues(
        self, conn: Conn, domain: FromQuery[Domain | None] = None, district: District = None
    ) -> list[PublicVenue]:
        return await merchants.list_public_venues(conn, domain=domain, district=district)


