"""The published document tells the truth: errors, security, examples, the rule language, the page.

The fuzzing of every operation against it is in `test_openapi_fuzz.py`; these are the facts a
reader of the document relies on, checked on the document itself.
"""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest

from api.errors import _TYPE_BY_STATUS
from api.openapi import DOMAIN_PROBLEMS
from foundation.errors import DomainError
from tests.factories.world import BENEFIT_DRAFT

METHODS = ("get", "put", "post", "delete", "patch")
PUBLIC = {
    "GET /health", "GET /ready", "GET /.well-known/jwks.json", "GET /dev-city/.well-known/jwks.json",
    "GET /v1/benefits", "GET /v1/benefits/{benefit_id}", "GET /v1/venues",
    "POST /v1/auth/suishen", "POST /v1/auth/staff", "POST /v1/auth/refresh", "POST /v1/auth/logout",
    "POST /v1/auth/password",
    "POST /v1/devices/token", "GET /v1/status-lists/{list_id}", "GET /v1/trust-list",
}
# The operations of the three audiences in the field: veteran (mini-program), scanner, merchant.
FIELD_TAGS = {"veteran", "scanning", "devices", "merchant", "auth"}


@pytest.fixture
async def document(client) -> dict:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def validator(document, schema):
    """A validator for `schema` whose `#/components/...` references resolve in `document`."""
    return jsonschema_rs.validator_for({"components": document["components"], **schema})


async def test_every_error_is_problem_json(document):
    for key, op in operations(document):
        for status, response in op["responses"].items():
            if status.startswith(("2", "3")) or key == "GET /ready":
                continue
            assert set(response["content"]) == {"application/problem+json"}, (key, status)
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "status_code" not in json.dumps(document), "Litestar's own error body is still documented somewhere"
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])


async def test_problem_schema_matches_a_real_error(client, document):
    response = await client.get("/v1/me")  # no token
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/problem+json")
    validator(document, {"$ref": "#/components/schemas/Problem"}).validate(response.json())
    assert "401" in document["paths"]["/v1/me"]["get"]["responses"]


async def test_statuses_follow_from_the_route(document):
    for key, op in operations(document):
        statuses = set(op["responses"])
        params = op.get("parameters", [])
        if key not in PUBLIC:
            assert {"401", "403"} <= statuses, key
        if any(p["in"] == "path" for p in params):
            assert "404" in statuses, key
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, key
    # Throttled and conflicting operations say so, with their stable problem types.
    login = document["paths"]["/v1/auth/staff"]["post"]["responses"]
    assert "urn:chongjun:problem:login-throttled" in json.dumps(login["429"])
    reversal = document["paths"]["/v1/scans/{redemption_id}/reversal"]["post"]["responses"]["409"]
    assert "already-reversed" in reversal["description"] and "reversal-window-closed" in reversal["description"]


async def test_domain_table_names_real_operations_and_types(document):
    ids = {op["operationId"] for _, op in operations(document)}
    assert not set(DOMAIN_PROBLEMS) - ids
    # Every documented problem type is one the code can answer: a domain error class or the edge's own.
    known = {kind.type for kind in _subclasses(DomainError)} | {slug for slug, _ in _TYPE_BY_STATUS.values()}
    known |= {"malformed-json", "invalid-request", "invalid-text"}  # api/errors.py answers these itself
    documented = set(re.findall(r"urn:chongjun:problem:([a-z0-9-]+)", json.dumps(document["paths"])))
    assert documented and not documented - known, sorted(documented - known)


def _subclasses(kind):
    yield kind
    for sub in kind.__subclasses__():
        yield from _subclasses(sub)


async def test_security_only_where_a_token_is_needed(document):
    assert "security" not in document, "no global security: public operations would inherit it"
    for key, op in operations(document):
        if key in PUBLIC:
            assert "security" not in op, key
        else:
            assert op["security"] == [{"bearer": []}], key
            assert op["x-audience"], key


async def test_field_operations_carry_examples_that_validate(document):
    checked = 0
    for key, op in operations(document):
        if not set(op.get("tags", ())) & FIELD_TAGS:
            continue
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            assert body.get("examples"), f"{key}: no request example"
            for example in body["examples"].values():
                validator(document, body["schema"]).validate(example["value"])
                checked += 1
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if not status.startswith("2") or media is None:
                continue
            assert media.get("examples"), f"{key}: no {status} example"
            for example in media["examples"].values():
                validator(document, media["schema"]).validate(example["value"])
                checked += 1
    assert checked >= 30


async def test_rule_language_is_a_real_recursive_schema(document):
    schemas = document["components"]["schemas"]
    body = document["paths"]["/v1/admin/benefits"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BenefitDraft"}
    assert schemas["BenefitDraft"]["properties"]["rule"] == {"$ref": "#/components/schemas/Rule"}
    rule = schemas["Rule"]
    assert rule["discriminator"]["propertyName"] == "op" and len(rule["anyOf"]) == 15
    assert schemas["All"]["properties"]["all"]["items"] == {"$ref": "#/components/schemas/Rule"}  # recursion
    draft = validator(document, {"$ref": "#/components/schemas/BenefitDraft"})
    draft.validate(BENEFIT_DRAFT)
    nested = {**BENEFIT_DRAFT, "rule": {"op": "not", "not": {"op": "any", "any": [
        {"op": "age", "min": 60}, {"op": "on_days", "days": ["08-01", "ARMY_DAY"]}]}}}
    draft.validate(nested)
    for bad in ({"op": "nope"}, {"op": "all", "all": []}, {"op": "disability_grade", "min": 11},
                {"op": "has_category", "category": "DISABLED_SERVICEMAN", "extra": 1}):
        assert not draft.is_valid({**BENEFIT_DRAFT, "rule": bad}), bad
    patch = document["paths"]["/v1/admin/benefits/{benefit_id}"]["patch"]["requestBody"]["content"]["application/json"]
    assert "required" not in patch["schema"]
    validator(document, patch["schema"]).validate({"rule": {"op": "always"}})


async def test_docs_page_loads_nothing_from_outside(client):
    page = await client.get("/schema")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    urls = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", text.split("<script>Redoc.init(")[0])
    assert urls and all(not re.match(r"(?i)^(https?:)?//", u) for u in urls), urls
    assert "default-src 'self'" in text  # the page's own policy blocks any outside fetch
    script = await client.get("/schema/redoc.standalone.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 500_000 and b"redoc.standalone.js.LICENSE.txt" in script.content[:200]
