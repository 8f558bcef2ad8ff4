"""The one place where errors become HTTP: RFC 9457 problem+json with a stable `type`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.utils.scope.state import ScopeState

from api.logs import request_id_var
from foundation import errors as domain

__all__ = ("PROBLEM_TYPE_PREFIX", "exception_handlers", "problem")

log = logging.getLogger("foundation.errors")

PROBLEM_TYPE_PREFIX = "urn:chongjun:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_STATUS_BY_CATEGORY: dict[type[domain.DomainError], int] = {
    domain.BadRequest: 400,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Invalid: 422,
    domain.RateLimited: 429,
    domain.Unavailable: 503,
}

# The problem type of a bare HTTP status: a domain category's own slug and title where one maps
# to the status, else the few statuses only the framework answers.
_TYPE_BY_STATUS: dict[int, tuple[str, str]] = {
    **{status: (category.type, category.title) for category, status in _STATUS_BY_CATEGORY.items()},
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id_var.get(),
    }
    body.update(extensions)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _status_of(exc: domain.DomainError) -> int:
    for category in type(exc).__mro__:
        if category in _STATUS_BY_CATEGORY:
            return _STATUS_BY_CATEGORY[category]
    return 400


def domain_error_handler(_: Request, exc: domain.DomainError) -> Response:
    status = _status_of(exc)
    headers = None
    if status == 429 and "retry_after" in exc.extensions:
        headers = {"Retry-After": str(exc.extensions["retry_after"])}
    return problem(status, exc.type, exc.title, exc.detail, headers=headers, **exc.extensions)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if isinstance(exc.__cause__, SerializationException):
        # Litestar wraps a body that msgspec could not decode at all.
        return domain_error_handler(request, domain.MalformedJson("The request body is not valid JSON"))
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else None
        extensions = {"errors": errors} if errors else {}
        detail = str(exc.detail or "The request does not match the schema")
        return problem(400, "invalid-request", "Bad request", detail, **extensions)
    if status >= 500:
        log.error("http error %s: %s", status, exc.detail)
        return problem(status, "internal-error", "Internal error", "The server could not finish the request")
    slug, title = _TYPE_BY_STATUS.get(status, ("http-error", "Request refused"))
    detail = str(exc.detail) if exc.detail else title
    headers = dict(exc.headers) if exc.headers else None
    return problem(status, slug, title, detail, headers=headers)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    # The message may hold data from the request; log it server-side only, never echo it.
    log.exception("unhandled error on %s %s", request.method, request.scope.get("path_template", "?"))
    return problem(500, "internal-error", "Internal error", "The server could not finish the request")


def too_deep_handler(request: Request, exc: RecursionError) -> Response:
    # msgspec decodes JSON recursively: a body of thousands of nested brackets ends here.
    return domain_error_handler(request, domain.MalformedJson("The request body is nested too deeply"))


def undecodable_body_handler(request: Request, exc: UnicodeDecodeError) -> Response:
    """Bytes the client sent that are not text in the encoding they must be in: 400, not 500.

    JSON bodies are decoded by `api.bodies` (which answers `malformed-json` itself) and the
    roster by its package (`roster-encoding`); this catches any other route that decodes a raw
    body in its package, such as the benefit definitions. It is the client's error only when the
    request's body is itself not UTF-8; a decoding error of anything else is ours and stays a 500.
    """
    body = ScopeState.from_scope(request.scope).body
    if not isinstance(body, bytes) or _is_utf8(body):
        return internal_error_handler(request, exc)
    media_type = request.content_type[0]
    if media_type in ("", "application/json") or media_type.endswith("+json"):
        return domain_error_handler(request, domain.MalformedJson("The request body is not valid JSON (UTF-8)"))
    return problem(400, "malformed-body", "Bad request", "The request body is not text in an encoding this route reads")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def unstorable_text_handler(_: Request, exc: asyncpg.PostgresError) -> Response:
    # PostgreSQL text and jsonb cannot hold NUL: a field the edge did not already refuse for it
    # fails its statement, the request's transaction rolls back, and this is the client's error.
    if exc.sqlstate in ("22021", "22P05"):
        return problem(400, "invalid-text", "Bad request", "Text fields may not contain NUL or other unstorable characters")
    log.error("database error %s", exc.sqlstate)
    return problem(500, "internal-error", "Internal error", "The server could not finish the request")


exception_handlers = {
    RecursionError: too_deep_handler,
    UnicodeDecodeError: undecodable_body_handler,
    asyncpg.CharacterNotInRepertoireError: unstorable_text_handler,
    asyncpg.UntranslatableCharacterError: unstorable_text_handler,
    domain.DomainError: domain_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
