"""The 长三角 trust list: city admins manage the issuers; anyone downloads the signed list."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.deps import Conn, CurrentPrincipal, Keyring, PublicUrl
from api.guards import requires_admin_role
from identity import issuers
from identity.issuers import IssuerCreate, IssuerStatusChange, IssuerView

__all__ = ("AdminIssuerController", "TrustListController")

IssuerCode = Annotated[str, PathParameter(pattern=r"^[A-Z]{2}-[A-Z0-9]{2,16}$", description="The issuer's code, e.g. JS-SUFU")]


async def _reload(request: Request, conn) -> None:
    # This worker sees the change at once; the others within TrustedIssuers.RELOAD_SECONDS.
    snapshot = getattr(request.app.state.city, "issuers", None)
    if snapshot is not None:
        await snapshot.load(conn)


class AdminIssuerController(Controller):
    path = "/v1/admin/issuers"
    tags = ["admin"]

    @get("", operation_id="AdminListIssuers", summary="The identity issuers of the trust list",
         guards=[requires_admin_role("city", "district", "auditor")])
    async def list_issuers(self, conn: Conn) -> list[IssuerView]:
        return await issuers.list_issuers(conn)

    @post("", operation_id="AdminCreateIssuer", status_code=HTTP_201_CREATED, guards=[requires_admin_role("city")],
          summary="Add an identity issuer (jwks: codes checked with its keys; online: its 验码 URL)")
    async def create(self, request: Request, data: JSONBody[IssuerCreate], conn: Conn, principal: CurrentPrincipal) -> IssuerView:
        view = await issuers.create_issuer(conn, principal, data)
        await _reload(request, conn)
        return view

    @post("/{code:str}/status", operation_id="AdminSetIssuerStatus", status_code=HTTP_200_OK,
          guards=[requires_admin_role("city")], summary="Suspend, reactivate or retire an issuer (retired is final)")
    async def set_status(
        self, request: Request, code: IssuerCode, data: JSONBody[IssuerStatusChange], conn: Conn, principal: CurrentPrincipal
    ) -> IssuerView:
        view = await issuers.set_issuer_status(conn, principal, code, data.status)
        await _reload(request, conn)
        return view


class TrustListController(Controller):
    path = "/v1/trust-list"
    tags = ["public"]
    opt = {"exclude_from_auth": True}

    @get("", operation_id="GetTrustList", summary="The signed 长三角 trust list (application/jose: a compact JWS, typ cj-trust-list+jwt)",
         description="Every identity issuer with its provider and status, signed with a key of /.well-known/jwks.json. "
         "`version` only grows: refuse a list older than one you saw; `exp` is 24 h.")
    async def trust_list(self, conn: Conn, keyring: Keyring, public_url: PublicUrl) -> Response[bytes]:
        token = await issuers.trust_list_token(conn, keyring=keyring, base_url=public_url)
        return Response(token.encode("ascii"), media_type="application/jose", headers={"Cache-Control": "public, max-age=60"})
