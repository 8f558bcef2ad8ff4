"""The veteran's 崇军码 and its QR images, and our public keys for offline verifiers."""

from __future__ import annotations

import asyncio
from typing import Annotated

import asyncpg

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED

import identity
import merchants
from api.deps import AppSettings, CurrentPrincipal, Keyring, Redis
from benefits import redemption
from api.guards import VeteranRoutes
from identity import CodeRequest, IssuedCode


class CodeController(VeteranRoutes):
    path = "/v1/me/codes"

    @post("/", operation_id="IssueCode", status_code=HTTP_201_CREATED, summary="A fresh 崇军码 (60 s; refresh at 30 s)")
    async def issue(
        self,
        principal: CurrentPrincipal,
        redis: Redis,
        keyring: Keyring,
        data: JSONBody[CodeRequest | None] = None,
    ) -> IssuedCode:
        benefit_id = data.benefit_id if data else None
        return await identity.issue_code(redis, principal.subject, keyring=keyring, benefit_id=benefit_id)

    @get("/{image:str}", operation_id="GetCodeImage", summary="QR of one's own live code: {jti}.png or {jti}.svg")
    async def image(
        self,
        principal: CurrentPrincipal,
        redis: Redis,
        # One Annotated, not FromPath[...] inside another: the inner PathParameter() would win and
        # the bounds be silently dropped.
        image: Annotated[str, PathParameter(max_length=40, pattern=r"^[A-Za-z0-9_-]+\.(png|svg)$")],
    ) -> Response[bytes]:
        body, media_type = await identity.code_image_file(redis, principal.subject, image)
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-store"})


class JwksController(Controller):
    tags = ["public"]

    @get("/.well-known/jwks.json", operation_id="Jwks", summary="Our public keys: token keys (next, active, retired) and the statement seal")
    async def jwks(self, keyring: Keyring, settings: AppSettings, state: State) -> Response[dict]:
        jwks = keyring.jwks()
        # Every version of the statement e-seal (kids "seal-..."): those this process holds, and
        # those that ever sealed (PostgreSQL; skipped while it does not answer, so the keys that
        # verify tokens stay published): see benefits/redemption/seal.py and archive.py.
        held = merchants.seal_ring(settings).jwks()
        try:
            async with asyncio.timeout(2):
                async with state.pool.acquire() as conn:
                    held = await redemption.published_seal_jwks(conn, held)
        except (OSError, AttributeError, asyncpg.PostgresError, TimeoutError):
            pass
        jwks["keys"].extend(held)
        return Response(jwks, headers={"Cache-Control": "public, max-age=300"})
