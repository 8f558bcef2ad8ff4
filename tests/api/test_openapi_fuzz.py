"""schemathesis over every operation of the published document, with a genuine token per audience.

Every operation is called by each audience its guards admit (veteran, staff, device, admin city /
district / auditor; public operations without a token), with data generated from the document:
valid data (positive) and data that breaks it (negative), path parameters now random and now the
ids of real objects (`tests/factories/world.py`), so both the 404 and the success paths are walked.
Each answer must be no 5xx, a status the document lists for that operation, a media type it lists,
and a body that validates against the schema documented for that status.

Bounded: EXAMPLES cases per operation, audience and mode (about 60 s on 2 cores). The run goes on
past a failure and reports them all, with counts.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import identity
from api import create_app
from api.openapi import AUDIENCES
from identity import Principal
from identity.people import ROSTER_COLUMNS, import_roster
from tests import tokens
from tests.authz.matrix import PATH_PARAMS
from tests.factories.world import VICTIM_DISTRICT, build_matrix_world

EXAMPLES = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


async def _admin(conn, role: str, district: str | None = None) -> Principal:
    record, _ = await identity.create_account(
        conn,
        identity.NewAccount(kind="admin", username=f"{role}{uuid.uuid4().hex[:8]}", role=role, district=district,
                            password="correct horse battery"),
    )
    return Principal(kind="admin", subject=record.id, role=role, district=district)


def _order(operation) -> tuple:
    """Reads first, then writes; revoking and rolling a device last (they end the device's token)."""
    method, path = operation.method.upper(), operation.path
    return (method != "GET", path.endswith(("/revoke", "/secret")), path, method)


async def test_schemathesis_every_operation_every_audience(settings, conn, redis):
    app = create_app(settings)
    # Loading the document over ASGI starts the app's lifespan (in schemathesis's event-loop
    # thread): the key ring is loaded and installed before the world is built.
    schema = await asyncio.to_thread(schemathesis.openapi.from_asgi, "/schema/openapi.json", app)
    try:
        report = await _with_world(app, schema, conn, redis)
    finally:
        await asyncio.to_thread(asgi.shutdown_lifespans)
    print(report.summary())
    assert report.operations >= 60, report.summary()
    # The control: every audience's token was genuine and live, so its refusals meant something.
    assert set(report.successes) == {"anonymous", *AUDIENCES}, report.successes
    assert not report.failures, report.summary() + "\n\n" + "\n\n".join(report.failures[:40])


ROSTER = ",".join(ROSTER_COLUMNS) + "\n11010519491231002X,欧阳娜娜,VETERAN|DISABLED_SERVICEMAN,2,因战,VETERAN_CARD,ACTIVE,310000,310115,1949-12-31\n"


async def _with_world(app, schema, conn, redis) -> Report:
    world = await build_matrix_world(conn, redis, keyring=app.state.keyring)
    # Veteran A enrolled in the roster, so the veteran's own operations reach their success path.
    await import_roster(conn, app.state.pii_vault, ROSTER)
    await conn.execute("UPDATE people SET id = $1", world.person_id)
    principals = {
        "veteran": world.principal("veteran"),
        "staff": Principal(kind="staff", subject=world.staff_id, role="manager", merchant_id=world.merchant_id),
        "device": Principal(kind="device", subject=world.device_id, merchant_id=world.merchant_id,
                            venue_id=world.venue_id, secret_generation=1),
        "admin:city": world.principal("city_admin"),
        "admin:district": await _admin(conn, "district", VICTIM_DISTRICT),
        "admin:auditor": await _admin(conn, "auditor"),
        "admin:security": await _admin(conn, "security"),
    }
    headers = {role: tokens.auth_headers(app, p, ttl_seconds=3600) for role, p in principals.items()}
    real_ids = {name: make(world) for name, make in PATH_PARAMS.items() if name not in ("image", "path")}
    real_ids["image"] = world.extra["code_jti"] + ".png"
    return await asyncio.to_thread(_fuzz, schema, headers, real_ids)


class Report:
    def __init__(self) -> None:
        self.operations = 0
        self.calls = 0
        self.statuses: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.kinds: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.successes: collections.Counter[str] = collections.Counter()

    def summary(self) -> str:
        by_class = collections.Counter(s[0] + "xx" for s in self.statuses.elements())
        return (
            f"schemathesis: {self.operations} operations, {self.calls} calls, statuses {dict(sorted(by_class.items()))}, "
            f"failures {len(self.failures)} {dict(self.kinds)}; slowest: "
            + ", ".join(f"{label} {seconds:.1f}s" for label, seconds in self.seconds.most_common(8))
        )


def _fuzz(schema, headers: dict[str, dict[str, str]], real_ids: dict[str, str]) -> Report:
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    report = Report()
    seen: set[tuple[str, str]] = set()
    for operation in operations:
        report.operations += 1
        audiences = operation.definition.raw.get("x-audience") or [None]
        for audience in audiences:
            auth = headers[audience] if audience else {}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(operation, mode, auth, real_ids, report, seen, audience)
    return report


def _run(operation, mode, auth, real_ids, report: Report, seen, audience) -> None:
    label = f"{operation.method.upper()} {operation.path} as {audience or 'anonymous'} ({mode.value})"

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @hypothesis.settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
    )
    def one(case, data) -> None:
        for name in list(case.path_parameters or {}):
            if name in real_ids and data.draw(st.booleans()):
                case.path_parameters[name] = real_ids[name]
        response = case.call(headers=auth)
        report.calls += 1
        report.statuses[str(response.status_code)] += 1
        if response.status_code < 300:
            report.successes[audience or "anonymous"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=auth)
        except (AssertionError, BaseExceptionGroup) as exc:  # every failure is recorded, none stops the run
            kind = type(exc).__name__
            key = (label.split(" (")[0], str(exc)[:200])
            if key in seen:
                return
            seen.add(key)
            report.kinds[kind] += 1
            report.failures.append(f"{label}: {response.status_code}\n{case.as_curl_command(headers=auth)[:600]}\n{str(exc)[:1500]}")

    started = time.perf_counter()
    try:
        one()
    except hypothesis.errors.Unsatisfiable:
        # Nothing to break (no parameters, no body): negative mode has no case to send.
        assert mode is GenerationMode.NEGATIVE, label
    finally:
        report.seconds[label] += time.perf_counter() - started
