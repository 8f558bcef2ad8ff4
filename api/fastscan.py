"""`POST /v1/scans` below Litestar's router: the hottest request skips the framework's per-request work.

A scan is the one request a busy gate sends hundreds of times a second. Through Litestar it pays
the router, the request object, the authentication middleware's connection object, the header
parameter model, the guard and the response object on every request. `ScanFastPath` answers the
ordinary scan itself, with the same checks in the same order, and hands everything else to the
app unchanged:

- it only takes `POST /v1/scans` with one `Authorization: Bearer` header whose token verifies as
  a device or staff principal that passes its lifecycle check (`app.state.principal_checks`,
  as `api.auth` runs it), at most one `Idempotency-Key` of at most 255 bytes, and a body within
  the app's limit that decodes strictly into `ScanRequest` (as `api.bodies` decodes it);
- anything else (no or a bad token, a wrong principal, a malformed or oversized body, a long
  key) goes to the app with the body it already read, so its answers (401, 403, 400, 413, ...)
  are the app's own, word for word;
- an error raised while deciding is answered by the app's exception handlers (`api.errors`).

It sits inside the request id and access log wrapper and counts the request in the same
metrics (`api.httpmetrics`, route template `/v1/scans`). The route stays declared in
`api.scans` for the OpenAPI document and for what does not take this path.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

import identity
from api.bodies import BodyRequest, strict_decoder
from api.errors import exception_handlers
from api.httpmetrics import RequestMetrics
from benefits import redemption
from benefits.redemption import ScanRequest
from foundation.connections import ConnectionOnDemand

__all__ = ("SCAN_PATH", "ScanFastPath")

SCAN_PATH = "/v1/scans"
_MAX_KEY_BYTES = 255  # api.scans: HeaderParameter(max_length=255)
_SCANNERS = ("device", "staff")  # api.guards.requires_device_or_staff
_decode_scan = strict_decoder(ScanRequest)
_JSON_HEADERS = (b"content-type", b"application/json")


class ScanFastPath:
    """ASGI: the ordinary scan answered here, every other request passed to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._metered = RequestMetrics(self._answer)
        self.answered = 0
        """Scans answered here (not by the app), for the tests."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SCAN_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        taken = await self._take(scope, receive, messages)
        if taken is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        scope["path_template"] = SCAN_PATH  # type: ignore[typeddict-unknown-key]  (what the router sets)
        scope["chongjun.scan"] = taken  # type: ignore[typeddict-unknown-key]
        self.answered += 1
        await self._metered(scope, _replaying(messages, receive), send)

    @staticmethod
    async def _take(scope: Scope, receive: Receive, messages: list[Message]) -> tuple | None:
        """(principal, request, key) when this is an ordinary scan; None: the app answers it."""
        authorization = key = None
        authorizations = keys = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization, authorizations = value, authorizations + 1
            elif name == b"idempotency-key":
                key, keys = value, keys + 1
        if authorizations != 1 or keys > 1 or (key is not None and not 0 < len(key) <= _MAX_KEY_BYTES):
            return None
        state = scope["app"].state
        limit = state.settings.max_body_bytes
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return None  # the client went away: the app sees it the same way
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                break
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            principal = identity.verify_access_token(token.strip(), keyring=state.keyring)
            check = state.principal_checks.get(principal.kind)
            if principal.kind not in _SCANNERS or check is None or not await check(principal, state):
                return None
        except Exception:  # noqa: BLE001 - a bad token, or a check that failed: the app answers it
            # (it runs the same verify and check, and its error handlers, which sit inside the
            # router, turn what they raise into problem+json; raised here it would reach the
            # server bare).
            return None
        try:
            request = _decode_scan.decode(body)
        except Exception:  # noqa: BLE001 - malformed or of the wrong shape: the app says which
            return None
        return principal, request, None if key is None else key.decode("latin-1")

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
        principal, request, key = scope["chongjun.scan"]  # type: ignore[typeddict-item]
        state = scope["app"].state
        # Most scans run every statement in the worker's batches: a connection of the main pool
        # only when one is needed (a venue or offers not cached, a replayed code, the slow path).
        try:
            async with ConnectionOnDemand(state.pool) as conn:
                answer = await redemption.scan(
                    conn, state.redis, principal, request,  # type: ignore[arg-type]  (duck-typed: the methods scan uses)
                    idempotency_key=key, scan_rate=state.settings.device_scan_rate,
                    keyring=state.keyring, providers=state.city, batches=state.scan_batches,
                )
        except Exception as exc:  # noqa: BLE001 - answered as the app answers it
            await _error(scope, receive, send, exc)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            _JSON_HEADERS, (b"content-length", str(len(answer)).encode("ascii")),
        ]})
        await send({"type": "http.response.body", "body": answer})


async def _error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """The problem+json answer of the app's exception handler for `exc`."""
    request: BodyRequest[Any, Any, Any] = BodyRequest(scope, receive)
    handler = next(exception_handlers[kind] for kind in type(exc).__mro__ if kind in exception_handlers)
    response = handler(request, exc)
    await response.to_asgi_response(app=None, request=request)(scope, receive, send)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first gives back what was already read."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
