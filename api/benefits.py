"""Benefits over HTTP: the public catalog (and, with auth, 免申即享 matching and admin CRUD)."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath

import benefits
from benefits.types import BenefitSummary

__all__ = ("BenefitCatalog", "PublicBenefitController")


class BenefitCatalog(msgspec.Struct, frozen=True):
    """The whole active catalog: small, so one unpaged answer."""

    items: list[BenefitSummary]


class PublicBenefitController(Controller):
    path = "/v1/benefits"
    tags = ["benefits"]
    opt = {"exclude_from_auth": True}  # public: a stale token sent here must not turn it into a 401

    @get("", operation_id="ListBenefits", summary="The active benefit catalog with rule summaries and venues")
    async def list_benefits(
        self, conn: NamedDependency[asyncpg.Connection], redis: NamedDependency[aioredis.Redis]
    ) -> BenefitCatalog:
        return BenefitCatalog(await benefits.public_catalog(conn, redis))

    @get("/{benefit_id:uuid}", operation_id="GetBenefit", summary="One active benefit with its venues")
    async def get_benefit(
        self,
        benefit_id: FromPath[UUID],
        conn: NamedDependency[asyncpg.Connection],
        redis: NamedDependency[aioredis.Redis],
    ) -> BenefitSummary:
        return await benefits.require_public_benefit(conn, redis, benefit_id)
