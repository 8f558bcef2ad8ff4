"""Errors of the trust list of identity issuers."""

from __future__ import annotations

from foundation.errors import Conflict, Invalid, NotFound

__all__ = ("InvalidIssuer", "IssuerExists", "IssuerNotFound", "IssuerStatusRefused")


class IssuerNotFound(NotFound):
    type = "issuer-not-found"
    title = "No such issuer"


class IssuerExists(Conflict):
    type = "issuer-exists"
    title = "An issuer with this code or code prefix exists"


class InvalidIssuer(Invalid):
    type = "invalid-issuer"
    title = "The issuer definition is not valid"


class IssuerStatusRefused(Conflict):
    type = "issuer-status-refused"
    title = "That status change is not allowed (retired is final)"
