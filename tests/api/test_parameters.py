"""Bounded path and query parameters (issue 11, defect 6): a value no row can have is a 400 or
404 before any SQL runs, never a 500 from the database or the calendar."""

from __future__ import annotations

import datetime
import enum
import types
import typing
import uuid

import pytest
from litestar.routes import HTTPRoute

from tests import tokens
from tests.foundation.test_http_contract import assert_problem
from tests.factories.world import DAILY, build_world

_UNBOUNDED_OK = {uuid.UUID, bool, datetime.date}
"""Types whose parser bounds them: a UUID, a bool and an ISO date parse or are 400."""


def _bare(annotation: typing.Any) -> set[typing.Any]:
    """The types a parameter may take: `int | None` is {int}."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(annotation) if a is not type(None)}
    return {annotation}


def test_every_path_and_query_parameter_is_bounded(app):
    """An int parameter declares ge and le; a str one a pattern or a max_length; anything else is
    a type whose parser bounds it (UUID, bool, date, an enum or Literal). A new route that forgets
    fails here, with its name."""
    unbounded = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for method, (handler, kwargs_model) in route.route_handler_map.items():
            if method in ("OPTIONS", "HEAD"):
                continue
            # A parameter is the handler's own or one of a dependency's (the `paging` dependency
            # declares `limit` and `cursor` for every list route).
            fields = dict(handler.parsed_fn_signature.parameters)
            for provide in handler.resolve_dependencies().values():
                fields.update(provide.parsed_fn_signature.parameters)
            for definition in kwargs_model.expected_path_params | kwargs_model.expected_query_params:
                field = fields[definition.field_name]
                bounds = field.kwarg_definition
                for kind in _bare(field.annotation):
                    if kind in _UNBOUNDED_OK or typing.get_origin(kind) is typing.Literal:
                        continue
                    if isinstance(kind, type) and issubclass(kind, enum.Enum):
                        continue
                    if kind is int and bounds is not None and bounds.ge is not None and bounds.le is not None:
                        continue
                    if kind is str and bounds is not None and (bounds.pattern or bounds.max_length):
                        continue
                    unbounded.append(f"{method} {route.path} {definition.field_name}: {kind}")
    assert not unbounded, "parameters without declared bounds:\n" + "\n".join(sorted(unbounded))


@pytest.mark.parametrize("version", ["2147483648", "99999999999999999999", "0", "-1"])
async def test_a_benefit_version_no_integer_column_holds_is_400(app, client, version):
    city = tokens.auth_headers(app, tokens.admin("city"))
    response = await client.get(f"/v1/admin/benefits/{uuid.uuid4()}/versions/{version}", headers=city)
    assert_problem(response, 400, "invalid-request")


async def test_the_largest_version_is_an_ordinary_404(app, client):
    city = tokens.auth_headers(app, tokens.admin("city"))
    response = await client.get(f"/v1/admin/benefits/{uuid.uuid4()}/versions/2147483647", headers=city)
    assert_problem(response, 404, "benefit-not-found")


async def test_an_expected_version_beyond_int32_is_400_and_changes_nothing(app, client, conn):
    city = tokens.auth_headers(app, tokens.admin("city"))
    created = await client.post("/v1/admin/benefits", json=DAILY, headers=city)
    assert created.status_code == 201, created.text
    benefit_id = created.json()["benefit_id"]
    spec = {k: v for k, v in DAILY.items() if k != "status"}
    response = await client.put(f"/v1/admin/benefits/{benefit_id}?expected_version=2147483648", json=spec, headers=city)
    assert_problem(response, 400, "invalid-request")
    assert await conn.fetchval("SELECT count(*) FROM benefit_versions") == 1


@pytest.mark.parametrize("month", ["9999-12", "0000-01", "1999-12", "2100-01", "26-01", "２０２６-01"])
async def test_a_statement_month_outside_the_calendar_we_serve_is_400(app, client, month):
    world = await build_world(client, app)
    staff = tokens.auth_headers(app, tokens.staff(uuid.UUID(world.merchant_id)))
    city = tokens.auth_headers(app, tokens.admin("city"))
    assert_problem(await client.get(f"/v1/merchant/statements/{month}", headers=staff), 400, "invalid-request")
    response = await client.get(f"/v1/admin/merchants/{world.merchant_id}/statements/{month}", headers=city)
    assert_problem(response, 400, "invalid-request")


@pytest.mark.parametrize("month", ["2026-13", "2026-00"])
async def test_a_month_that_does_not_exist_keeps_its_own_problem(app, client, month):
    world = await build_world(client, app)
    staff = tokens.auth_headers(app, tokens.staff(uuid.UUID(world.merchant_id)))
    assert_problem(await client.get(f"/v1/merchant/statements/{month}", headers=staff), 400, "invalid-period")
