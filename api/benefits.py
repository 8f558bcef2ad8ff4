"""Benefits over HTTP: the public catalog (and, with auth, 免申即享 matching and admin CRUD)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from litestar import Request, Response, get, patch, post, put
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody, PathParameter, QueryParameter, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from benefits import catalog
from api.deps import Conn, CurrentPrincipal, ReadConn, Redis, read_cache_seconds
from api.guards import AdminRoutes, PublicRoutes, VeteranRoutes, requires_admin_role
from api.paging import Page, Paging
from benefits.catalog.types import BenefitStatus, BenefitSummary, BenefitView, Domain, MyBenefits

__all__ = ("AdminBenefitController", "BenefitCatalog", "MyBenefitsController", "PublicBenefitController")


INT4_MAX = 2**31 - 1
"""Benefit versions are PostgreSQL `integer`: a larger number cannot name one and must not reach SQL."""
Version = Annotated[int, PathParameter(ge=1, le=INT4_MAX, description="A version number (1, 2, ...)")]
ExpectedVersion = Annotated[
    int | None,
    QueryParameter(ge=1, le=INT4_MAX, description="The version the change is based on: 409 if another came since"),
]


class BenefitCatalog(msgspec.Struct, frozen=True):
    """The whole active catalog: small, so one unpaged answer."""

    items: list[BenefitSummary]


class PublicBenefitController(PublicRoutes):
    path = "/v1/benefits"
    tags = ["benefits"]

    @get("", operation_id="ListBenefits", summary="The active benefit catalog with rule summaries and venues")
    async def list_benefits(self, conn: Conn, redis: Redis) -> BenefitCatalog:
        return BenefitCatalog(await catalog.public_catalog(conn, redis))

    @get("/{benefit_id:uuid}", operation_id="GetBenefit", summary="One active benefit with its venues")
    async def get_benefit(
        self,
        benefit_id: FromPath[UUID],
        conn: Conn,
        redis: Redis,
    ) -> BenefitSummary:
        return await catalog.require_public_benefit(conn, redis, benefit_id)


class MyBenefitsController(VeteranRoutes):
    path = "/v1/me/benefits"

    @get(
        "",
        operation_id="ListMyBenefits",
        summary="免申即享: every active benefit for me, eligible or not and why, quota left, where",
    )
    async def list_mine(
        self,
        request: Request,
        read_conn: ReadConn,
        redis: Redis,
        principal: CurrentPrincipal,
    ) -> MyBenefits:
        return await catalog.my_benefits_of(read_conn, redis, principal.subject, cache_seconds=read_cache_seconds(request))


# --- admin -----------------------------------------------------------------------------------------

_EXAMPLE_DRAFT = {
    "code": "T1",
    "name_zh": "残疾军人免费乘坐本市公交、电车",
    "name_en": "Free city bus and trolleybus for disabled servicemen",
    "domain": "transit",
    "value": {"kind": "free"},
    "rule": {
        "op": "all",
        "all": [
            {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
            {"op": "disability_grade", "min": 1, "max": 10},
        ],
    },
    "companions": {"max": 1, "rule": {"op": "disability_grade", "min": 1, "max": 4}},
    "caps": [{"period": "day", "max": 4}],
    "windows": {"weekdays": [1, 2, 3, 4, 5], "hours": [{"from": "06:00", "to": "22:00"}]},
    "status": "draft",
}


def _json_body(description: str, example: dict | None = None) -> type[Operation]:
    """Document the raw JSON body these routes validate themselves (422 naming each bad node)."""

    @dataclass
    class JsonBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=description,
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.OBJECT),
                        examples={"T1": Example(summary="a benefit", value=example or _EXAMPLE_DRAFT)},
                    )
                },
            )

    return JsonBodyOperation


_DRAFT_BODY = _json_body(
    "A BenefitDraft: the fields of BenefitView without benefit_id/version/created_at, plus `status` "
    "(draft | active) and `venue_ids`. `rule` is the rule language of benefits/rules.py. A bad node "
    "answers 422 `invalid-rule` / `invalid-benefit` with `errors: [{path, message}]`."
)
_PREVIEW_BODY = _json_body(
    "A PreviewRequest: `benefit` as AdminCreateBenefit takes it and `person`, a SamplePerson "
    "(categories, disability_grade, card_kind, ...). The same 422 as a create names the bad node.",
    example={"benefit": _EXAMPLE_DRAFT, "person": {"categories": ["VETERAN", "DISABLED_SERVICEMAN"], "disability_grade": 2}},
)
_SPEC_BODY = _json_body("A whole BenefitSpec (PUT replaces the definition; status and venues stay).")
_PATCH_BODY = _json_body("Some top-level fields of a BenefitSpec; the others keep their current value.")


@dataclass(frozen=True, slots=True)
class CatalogEdit:
    """What every change of the catalog needs (the `edit` dependency of the admin routes): the
    request's connection, who acts, and the answer that moves the catalog generation."""

    conn: asyncpg.Connection
    actor: catalog.Actor
    redis: aioredis.Redis

    def answer(self, view: catalog.BenefitView, status_code: int = HTTP_200_OK) -> Response[catalog.BenefitView]:
        # The catalog generation moves after the response, i.e. after the transaction committed, so
        # no reader can cache the old catalog under the new generation.
        return Response(view, status_code=status_code, background=BackgroundTask(catalog.catalog_changed, self.redis))


def provide_edit(conn: Conn, redis: Redis, principal: CurrentPrincipal) -> CatalogEdit:
    actor = catalog.Actor(principal.kind, str(principal.subject), principal.role, principal.district)
    return CatalogEdit(conn, actor, redis)


Edit = NamedDependency[CatalogEdit]
"""`edit`: a change of the catalog by the calling admin (`provide_edit`)."""


@dataclass(frozen=True, slots=True)
class BaseVersion:
    """What a new version (PUT, PATCH) is based on: the benefit, and the version the client read
    (`expected_version`; None: whichever is current). Another version since is a 409."""

    benefit_id: UUID
    expected: int | None


def provide_base(benefit_id: FromPath[UUID], expected_version: ExpectedVersion = None) -> BaseVersion:
    return BaseVersion(benefit_id, expected_version)


Base = NamedDependency[BaseVersion]
"""`base`: the `{benefit_id}` and `?expected_version=` of a new version (`provide_base`)."""
_city = [requires_admin_role("city")]


class AdminBenefitController(AdminRoutes):
    """Benefits are city-wide: every admin role reads them, only city admins change them."""

    path = "/v1/admin/benefits"
    dependencies = {
        "edit": Provide(provide_edit, sync_to_thread=False),
        "base": Provide(provide_base, sync_to_thread=False),
    }

    @get("", operation_id="AdminListBenefits", summary="Every benefit, any status, paged")
    async def list_benefits(
        self,
        conn: Conn,
        paging: Paging,
        status: FromQuery[BenefitStatus | None] = None,
        domain: FromQuery[Domain | None] = None,
    ) -> Page[BenefitView]:
        return await catalog.list_benefits_page(conn, limit=paging.limit, cursor=paging.cursor, status=status, domain=domain)

    # The bodies of create, replace and patch are decoded by benefits, so every error names its JSON path.
    @post(
        "", operation_id="AdminCreateBenefit", summary="A new benefit at version 1",
        guards=_city, operation_class=_DRAFT_BODY, status_code=HTTP_201_CREATED,
    )
    async def create_benefit(self, edit: Edit, body: RawBody) -> Response[catalog.BenefitView]:
        return edit.answer(await catalog.create_benefit_json(edit.conn, body, edit.actor), HTTP_201_CREATED)

    @post(
        "/preview",
        operation_id="AdminPreviewBenefit",
        summary="Validate a draft and explain its rule for a sample person (nothing is stored)",
        operation_class=_PREVIEW_BODY,
        status_code=HTTP_200_OK,
    )
    async def preview_benefit(self, body: RawBody) -> catalog.RulePreview:
        # The console's rule editor calls this as the rule is typed: no connection, no write.
        return catalog.preview_benefit_json(body, at=datetime.now(UTC))

    @get("/{benefit_id:uuid}", operation_id="AdminGetBenefit", summary="A benefit's version in force and its venues")
    async def get_benefit(self, conn: Conn, benefit_id: FromPath[UUID]) -> catalog.BenefitView:
        return await catalog.get_benefit_view(conn, benefit_id)

    @get(
        "/{benefit_id:uuid}/versions/{version:int}",
        operation_id="AdminGetBenefitVersion",
        summary="Any version of a benefit, as the ledger recorded it",
    )
    async def get_version(
        self, conn: Conn, benefit_id: FromPath[UUID], version: Version
    ) -> catalog.BenefitVersion:
        return await catalog.get_version_or_404(conn, benefit_id, version)

    @put(
        "/{benefit_id:uuid}", operation_id="AdminReplaceBenefit", summary="A new version with this definition",
        guards=_city, operation_class=_SPEC_BODY,
    )
    async def replace_benefit(self, edit: Edit, body: RawBody, base: Base) -> Response[catalog.BenefitView]:
        return edit.answer(await catalog.replace_benefit_json(edit.conn, base.benefit_id, body, edit.actor, expected_version=base.expected))

    @patch(
        "/{benefit_id:uuid}", operation_id="AdminPatchBenefit", summary="A new version with some fields changed",
        guards=_city, operation_class=_PATCH_BODY,
    )
    async def patch_benefit(self, edit: Edit, body: RawBody, base: Base) -> Response[catalog.BenefitView]:
        return edit.answer(await catalog.patch_benefit(edit.conn, base.benefit_id, body, edit.actor, expected_version=base.expected))

    @post(
        "/{benefit_id:uuid}/status", operation_id="AdminChangeBenefitStatus",
        summary="Activate, pause or retire (a new version)", guards=_city, status_code=HTTP_200_OK,
    )
    async def change_status(
        self, edit: Edit, benefit_id: FromPath[UUID], data: JSONBody[catalog.StatusChange]
    ) -> Response[catalog.BenefitView]:
        return edit.answer(await catalog.change_status(edit.conn, benefit_id, data, edit.actor))

    @put("/{benefit_id:uuid}/venues", operation_id="AdminSetBenefitVenues", summary="Where the benefit can be used", guards=_city)
    async def set_venues(
        self, edit: Edit, benefit_id: FromPath[UUID], data: JSONBody[catalog.VenueList]
    ) -> Response[catalog.BenefitView]:
        return edit.answer(await catalog.set_benefit_venues(edit.conn, benefit_id, data.venue_ids, edit.actor))
