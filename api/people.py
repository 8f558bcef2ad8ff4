"""Veterans and the roster: 随申码 login, the veteran's own profile, roster import, the dev city JWKS."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.di import Provide
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromQuery, JSONBody, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_415_UNSUPPORTED_MEDIA_TYPE

import identity
from api.exchange import run_checks_safely
from api.deps import City, Conn, CurrentPrincipal, Keyring, Redis, Vault
from api.guards import AdminRoutes, PublicRoutes, VeteranRoutes, requires_admin_role
from identity import CityProviders, ImportReport, PersonProfile, PiiVault, SuishenLogin, SuishenSession
from identity.issuers import TrustedIssuers

__all__ = (
    "DevCityController",
    "MeController",
    "RosterController",
    "SuishenLoginController",
    "people_lifespan",
)

log = logging.getLogger("chongjun.people")

ROSTER_MAX_BYTES = 64 * 1024 * 1024
"""A roster of 500,000 people is about 40 MiB of CSV; the rest of the API keeps its 1 MiB cap."""


@asynccontextmanager
async def people_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The PII vault and the city providers of this worker (secrets read once, at start)."""
    settings = app.state.settings
    vault = identity.pii_vault(settings)
    providers = CityProviders.from_settings(settings, vault)
    if settings.is_production and providers.platform is None:
        log.error("CHONGJUN_CITY_PLATFORM_URL is not set: every 随申码 will be refused")
    # The 长三角 trust list's issuers: loaded now, reloaded every few seconds (a suspension made on
    # another worker reaches this one within TrustedIssuers.RELOAD_SECONDS).
    providers.issuers = TrustedIssuers(vault)
    reloader = asyncio.create_task(_reload_issuers(app, providers.issuers))
    app.state.pii_vault = vault
    app.state.city = providers
    try:
        yield
    finally:
        reloader.cancel()
        await asyncio.gather(reloader, return_exceptions=True)
        await providers.aclose()


async def _reload_issuers(app: Litestar, snapshot: TrustedIssuers) -> None:
    while True:
        try:
            async with app.state.pool.acquire() as conn:
                await snapshot.load(conn)
        except Exception as exc:  # PostgreSQL down: keep the last snapshot, try again
            log.warning("trust list reload failed", extra={"fields": {"error": type(exc).__name__}})
        await asyncio.sleep(TrustedIssuers.RELOAD_SECONDS)


def provide_city(state: State) -> CityProviders:
    return state.city


def provide_pii_vault(state: State) -> PiiVault:
    return state.pii_vault


class SuishenLoginController(PublicRoutes):
    path = "/v1/auth"
    tags = ["auth"]
    dependencies = {"city": Provide(provide_city, sync_to_thread=False)}

    @post(
        "/suishen",
        operation_id="SuishenLogin",
        status_code=HTTP_200_OK,
        summary="Log in with a 随申码",
        description="Verifies the code with the city platform (the simulator in dev) and opens a veteran session. "
        "Every bad code gets the same 401; a citizen not in the roster gets 403 not-enrolled, a suspended card "
        "403 card-suspended.",
    )
    async def login(
        self,
        data: JSONBody[SuishenLogin],
        conn: Conn,
        redis: Redis,
        keyring: Keyring,
        city: City,
    ) -> SuishenSession:
        return await identity.suishen_login(conn, redis, data.code, providers=city, keyring=keyring)


class MeController(VeteranRoutes):
    path = "/v1/me"

    @get("", operation_id="GetMe", summary="My profile (masked)")
    async def me(self, conn: Conn, principal: CurrentPrincipal) -> PersonProfile:
        return await identity.get_profile(conn, principal.subject)


@dataclass
class CsvUploadOperation(Operation):
    """The roster is a raw text/csv body, which Litestar cannot infer from a `body: bytes` parameter."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={"text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
            required=True,
            description="the roster CSV (UTF-8, with or without BOM, or GB 18030), header first",
        )


class RosterController(AdminRoutes):
    path = "/v1/admin/people"
    guards = [requires_admin_role("city")]
    dependencies = {"pii_vault": Provide(provide_pii_vault, sync_to_thread=False)}

    @post(
        "/import",
        operation_id="ImportRoster",
        status_code=HTTP_200_OK,
        request_max_body_size=ROSTER_MAX_BYTES,
        operation_class=CsvUploadOperation,
        summary="Import the roster (text/csv)",
        description="Columns: id_number,name,categories,disability_grade,disability_cause,card_kind,card_status,"
        "card_province,district,birth_date[,relations] (relations: KIND:ID_NUMBER[:STATUS] separated by |). All or nothing unless valid_only=true; an invalid file answers 422 "
        "roster-rejected with the line-numbered report. Re-importing is an idempotent upsert.",
    )
    async def import_roster(
        self,
        request: Request[Any, Any, Any],
        body: RawBody,
        conn: Conn,
        pii_vault: Vault,
        principal: CurrentPrincipal,
        valid_only: FromQuery[bool] = False,
    ) -> ImportReport:
        if request.content_type[0] not in ("text/csv", "application/csv", "text/plain"):
            raise HTTPException(status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send the roster as text/csv")
        report = await identity.import_roster(
            conn, pii_vault, body, valid_only=valid_only, actor_kind="admin", actor_id=str(principal.subject)
        )
        # Issue 13: the data-quality checks run after each import too, seeing what it wrote.
        await run_checks_safely(conn, request.app.state.settings)
        return report


class DevCityController(PublicRoutes):
    """The simulated city platform's public keys; registered only outside production."""

    path = "/dev-city"
    tags = ["dev"]
    dependencies = {"city": Provide(provide_city, sync_to_thread=False)}

    @get("/.well-known/jwks.json", operation_id="DevCityJwks", summary="Keys of the simulated city platform (dev)")
    async def jwks(self, city: City) -> dict[str, Any]:
        if city.dev is None:
            raise HTTPException(status_code=404, detail="Not found")
        return city.dev.jwks()
