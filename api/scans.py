"""Scanning at the gate and reversing a scan: devices and merchant staff."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody

from api.deps import AppSettings, Conn, CurrentPrincipal, PlainConn, Redis
from api.guards import requires_device_or_staff
from benefits import redemption
from benefits.redemption import ReversalRequest, ReversalResult, ScanDecision, ScanRequest
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
        plain_conn: PlainConn,
        data: JSONBody[ScanRequest],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=255)] = None,
    ) -> Response[ScanDecision]:
        # The hottest route: it asks Litestar for one dependency only (several would be resolved
        # in a task group per request) and reads the caller, Redis and settings directly. The
        # guard has already made sure `request.user` is a device or staff principal.
        settings: Settings = state.settings
        answer = await redemption.scan(
            plain_conn, state.redis, request.user, data,
            idempotency_key=idempotency_key, scan_rate=settings.device_scan_rate,
            keyring=state.keyring, providers=state.city,
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
