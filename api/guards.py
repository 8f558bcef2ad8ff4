"""Guards: which kind of caller may use a route. Ownership of objects is checked in services.

Guards are coroutines on purpose: Litestar runs a plain function guard in a worker thread, and
that hand-off cost more than the whole check on every request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar import Controller, Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from identity import NotAuthenticated, Principal, WrongPrincipal

__all__ = (
    "AdminRoutes",
    "MerchantRoutes",
    "PublicRoutes",
    "VeteranRoutes",
    "provide_principal",
    "requires_admin",
    "requires_admin_role",
    "requires_device",
    "requires_device_or_staff",
    "requires_staff",
    "requires_veteran",
)

Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]


def _principal(connection: ASGIConnection) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthenticated()
    return user


def _requires(*kinds: str) -> Guard:
    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if _principal(connection).kind not in kinds:
            raise WrongPrincipal()

    guard.__name__ = "requires_" + "_or_".join(kinds)
    guard.audience = frozenset(kinds)  # read by api.openapi to say who may call
    return guard


requires_veteran = _requires("veteran")
requires_staff = _requires("staff")
requires_admin = _requires("admin")
requires_device = _requires("device")
requires_device_or_staff = _requires("device", "staff")


def requires_admin_role(*roles: str) -> Guard:
    """An admin whose role is one of `roles` (city | district | auditor)."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = _principal(connection)
        if principal.kind != "admin" or principal.role not in roles:
            raise WrongPrincipal()

    guard.__name__ = "requires_admin_role_" + "_".join(roles)
    guard.audience = frozenset(f"admin:{role}" for role in roles)
    return guard


# One base per audience: a controller names who it serves by its base class, which holds the
# audience's guard and OpenAPI tag, so a new controller of that audience cannot leave one out.


class VeteranRoutes(Controller):
    """The veteran's own routes (the mini-program): a veteran token."""

    tags = ["veteran"]
    guards = [requires_veteran]


class AdminRoutes(Controller):
    """Administration: every admin role enters; a route narrows it with `requires_admin_role`."""

    tags = ["admin"]
    guards = [requires_admin]


class MerchantRoutes(Controller):
    """The merchant back office: the merchant's staff."""

    tags = ["merchant"]
    guards = [requires_staff]


class PublicRoutes(Controller):
    """No token needed; a stale one sent here is ignored rather than turned into a 401."""

    opt = {"exclude_from_auth": True}


def provide_principal(request: Request) -> Principal:
    """The `principal` dependency: the authenticated caller (401 if there is none)."""
    return _principal(request)
