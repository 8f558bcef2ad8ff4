"""Scanning at the gate and reversing a scan: devices and merchant staff."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody

from api.deps import AppSettings, Conn, CurrentPrincipal, Keyring, PlainConn, PublicUrl, Redis
from api.guards import requires_device, requires_device_or_staff
from benefits import redemption
from benefits.redemption import OfflineResults, OfflineUpload, ReversalRequest, ReversalResult, ScanDecision, ScanRequest
from foundation.settings import Settings

__all__ = ("ScanController",)


class ScanController(Controller):
    path = "/v1/scans"
    tags = ["scanning"]
    guards = [requires_device_or_staff]

    @post(
        "/",
        operation_id="Scan",
        status_code=200,
        summary="Decide a scanned 崇军码 or 随申码: accepted only after the ledger row is committed",
    )
    async def scan(
        self,
        request: Request,
        state: State,
        data: JSONBody[ScanRequest],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=255)] = None,
    ) -> Response[ScanDecision]:
        # The hottest route: it asks Litestar for no dependency at all and takes its connection
        # (outside any transaction, as `PlainConn` would give it), the caller, Redis and settings
        # directly: resolving the one async-generator dependency cost ~10 us of the framework's
        # ~40 us per request (measured in process, the note of issue 16), and the connection goes
        # back to the pool before the answer is sent, not after. The guard has already made sure
        # `request.user` is a device or staff principal.
        settings: Settings = state.settings
        async with state.pool.acquire() as conn:
            answer = await redemption.scan(
                conn, state.redis, request.user, data,
                idempotency_key=idempotency_key, scan_rate=settings.device_scan_rate,
                keyring=state.keyring, providers=state.city, batches=state.scan_batches,
            )
        return Response(answer, media_type="application/json")

    @post("/{redemption_id:uuid}/reversal", operation_id="ReverseScan", status_code=200, summary="Reverse an accepted scan within the window")
    async def reverse(
        self,
        principal: CurrentPrincipal,
        conn: Conn,
        redis: Redis,
        settings: AppSettings,
        redemption_id: FromPath[UUID],
        data: JSONBody[ReversalRequest],
    ) -> ReversalResult:
        return await redemption.reverse(
            conn, redis, principal, redemption_id, data.reason, window_seconds=settings.reversal_window_seconds
        )

    @get(
        "/offline-bundle",
        operation_id="GetOfflineBundle",
        guards=[requires_device],
        summary="The signed offline bundle of this gate (application/jose: a compact JWS, typ cj-offline-bundle+jwt)",
        description="What a gate decides from while the network is gone: the keys a 崇军码 is signed with (JWKS), the "
        "credential status list, the venue's benefits with the digest of their rules, and the offline budget (accepts "
        "per hour, per holder and day, how long the bundle is valid). Signed with a key of /.well-known/jwks.json.",
    )
    async def offline_bundle(
        self, principal: CurrentPrincipal, conn: Conn, keyring: Keyring, settings: AppSettings, public_url: PublicUrl
    ) -> Response[bytes]:
        token = await redemption.offline_bundle(conn, principal, keyring=keyring, settings=settings, base_url=public_url)
        return Response(token.encode("ascii"), media_type="application/jose", headers={"Cache-Control": "no-store"})

    @post(
        "/offline",
        operation_id="UploadOfflineScans",
        status_code=200,
        guards=[requires_device],
        summary="Upload decisions a gate took offline: each is recorded, a conflict or rejected, once",
        description="Each item is reconciled once per device and `local_id`: `recorded` (a ledger row with its decision "
        "time), `conflict` (the code was used or a cap or the offline budget was reached first: kept with its reason, "
        "not counted) or `rejected` (invalid, with its reason). Sending the same batch again gives the same answers "
        "and writes nothing. At most 200 items.",
    )
    async def offline(
        self, principal: CurrentPrincipal, plain_conn: PlainConn, redis: Redis, keyring: Keyring, settings: AppSettings,
        data: JSONBody[OfflineUpload],
    ) -> OfflineResults:
        return await redemption.reconcile(plain_conn, redis, principal, data, keyring=keyring, settings=settings)
