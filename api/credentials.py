"""The electronic 优待证 (SD-JWT VC) and the Token Status List that says whether it still holds."""

from __future__ import annotations

from litestar import Response, get, post
from typing import Annotated

from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED

from api.deps import Conn, CurrentPrincipal, Keyring, PublicUrl
from api.guards import PublicRoutes, VeteranRoutes
from identity import credentials
from identity.credentials import CredentialRequest, IssuedCredential

__all__ = ("MyCredentialController", "StatusListController")

STATUS_LIST_MEDIA_TYPE = "application/statuslist+jwt"
ListId = Annotated[int, PathParameter(ge=1, le=2**31 - 1, description="The status list number (1, 2, ...)")]


class MyCredentialController(VeteranRoutes):
    path = "/v1/me/credential"

    @post(
        "",
        operation_id="IssueCredential",
        status_code=HTTP_201_CREATED,
        summary="An electronic 优待证 (SD-JWT VC) bound to the app's key",
        description="The app sends the public half of a key it holds (Ed25519 or P-256 JWK); the answer is an "
        "SD-JWT VC (`dc+sd-jwt`) whose category, masked name, district, card kind and validity are selectively "
        "disclosable, never the ID number. Its status is in the Token Status List it names.",
    )
    async def issue(
        self, data: JSONBody[CredentialRequest], conn: Conn, principal: CurrentPrincipal, keyring: Keyring, public_url: PublicUrl
    ) -> IssuedCredential:
        return await credentials.issue_credential(
            conn, principal.subject, data.holder_jwk, keyring=keyring, base_url=public_url
        )


class StatusListController(PublicRoutes):
    path = "/v1/status-lists"
    tags = ["public"]

    @get(
        "/{list_id:int}",
        operation_id="GetStatusList",
        summary="A Token Status List (IETF OAuth Status List), signed: application/statuslist+jwt",
        description="2 bits per credential: 0 valid, 1 invalid, 2 suspended. `ttl` (60 s) is how long a verifier "
        "may cache it online; `exp` (24 h) how long an offline verifier may keep using it.",
    )
    async def status_list(self, list_id: ListId, conn: Conn, keyring: Keyring, public_url: PublicUrl) -> Response[bytes]:
        token = await credentials.status_list_token(conn, list_id, keyring=keyring, base_url=public_url)
        return Response(
            token.encode("ascii"),
            media_type=STATUS_LIST_MEDIA_TYPE,
            headers={"Cache-Control": f"public, max-age={credentials.STATUS_LIST_TTL}"},
        )
