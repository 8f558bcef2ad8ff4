"""The base of every domain error; `api/errors.py` maps the categories below to HTTP.

A domain package defines its own errors as subclasses of one category, with a stable `type`
slug that clients may branch on, e.g. ``class NotEnrolled(Forbidden): type = "not-enrolled"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = (
    "BadRequest",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Invalid",
    "MalformedJson",
    "NotFound",
    "RateLimited",
    "Unauthenticated",
    "Unavailable",
)


class DomainError(Exception):
    """A rule a caller broke; carries a stable `type` slug, a human `detail` and extensions."""

    type: ClassVar[str] = "domain-error"
    title: ClassVar[str] = "Request refused"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions


class BadRequest(DomainError):
    type = "bad-request"
    title = "Bad request"


class MalformedJson(BadRequest):
    """A body that is not JSON at all (bad syntax, not UTF-8, nested too deeply): the one error
    for it, whether the edge decodes the body (`api.bodies`) or its package does."""

    type = "malformed-json"


class Unauthenticated(DomainError):
    type = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    type = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    type = "not-found"
    title = "Not found"


class Conflict(DomainError):
    type = "conflict"
    title = "Conflict"


class Invalid(DomainError):
    type = "validation-failed"
    title = "Validation failed"


class RateLimited(DomainError):
    type = "rate-limited"
    title = "Too many requests"


class Unavailable(DomainError):
    type = "unavailable"
    title = "Service unavailable"
