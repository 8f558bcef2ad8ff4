"""A benefit draft tried on a sample person, for the console's rule editor: nothing is stored.

The draft is validated exactly as `create_benefit` validates it (the same 422 naming the bad
node's JSON path), then its rule is evaluated and explained for a made-up person, so an editor
sees what a veteran would read (zh and en) before the rule reaches anyone.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import uuid4

import msgspec

import identity
from benefits.catalog.errors import InvalidBenefit, RuleProblem
from benefits.catalog.evaluation import companions_allowed, explain, window_open
from benefits.catalog.rules import ClauseResult, describe
from benefits.catalog.service import decode_draft
from benefits.catalog.types import BenefitDraft, BenefitVersion, Decision
from foundation import vocabulary
from foundation.errors import MalformedJson
from foundation.structs import Input, Record

__all__ = ("PreviewRequest", "RulePreview", "SamplePerson", "preview_benefit_json")


class SamplePerson(Input, kw_only=True):
    """A made-up person with the fields the rules read (no name, no ID number)."""

    categories: Annotated[list[str], msgspec.Meta(max_length=20)]
    disability_grade: Annotated[int, msgspec.Meta(ge=1, le=10)] | None = None
    disability_cause: Literal["WAR", "DUTY", "ILLNESS"] | None = None
    card_kind: Literal["VETERAN_CARD", "SURVIVOR_CARD", "NONE"] = "VETERAN_CARD"
    card_status: Literal["ACTIVE", "SUSPENDED", "REVOKED", "REPLACED"] = "ACTIVE"
    card_province: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")] = vocabulary.SHANGHAI_PROVINCE
    district: Annotated[str, msgspec.Meta(pattern=r"^\d{6}$")] | None = None
    birth_date: date | None = None


class PreviewRequest(Input, kw_only=True):
    """`POST /v1/admin/benefits/preview`: a draft as `POST /v1/admin/benefits` takes it, and a person."""

    benefit: BenefitDraft
    person: SamplePerson


class _Body(Input, kw_only=True):
    benefit: msgspec.Raw
    person: msgspec.Raw


class RulePreview(Record, kw_only=True):
    rule_summary_zh: str
    rule_summary_en: str
    decision: Decision
    clauses: list[ClauseResult]
    companions_allowed: int
    window_open_now: bool
    window_zh: str
    window_en: str


def _person(raw: bytes) -> identity.Person:
    try:
        sample = msgspec.json.decode(raw, type=SamplePerson)
    except msgspec.ValidationError as exc:
        raise InvalidBenefit([RuleProblem("$.person", str(exc))]) from None
    unknown = [i for i, c in enumerate(sample.categories) if c not in vocabulary.CATEGORIES]
    if unknown:
        raise InvalidBenefit([RuleProblem(f"$.person.categories[{unknown[0]}]", "not a category code")])
    fields = {f: getattr(sample, f) for f in SamplePerson.__struct_fields__ if f != "categories"}
    return identity.Person(id=uuid4(), name_masked="样*", categories=frozenset(sample.categories), **fields)


def preview_benefit_json(raw: bytes, *, at: datetime) -> RulePreview:
    """Validate `raw` (`PreviewRequest` JSON) and explain its rule for its person at `at`.

    Errors: 400 `malformed-json` for JSON that does not parse, 422 `invalid-rule` /
    `invalid-benefit` with the JSON path of the bad node inside `benefit` (`$.rule.all[1].min`),
    or under `$.person` for the sample person.
    """
    try:
        raw.decode("utf-8")  # msgspec checks only the strings it reads; the outer fields are Raw
    except UnicodeDecodeError:
        raise MalformedJson("The request body is not UTF-8 JSON") from None
    try:
        body = msgspec.json.decode(raw, type=_Body)
    except msgspec.ValidationError as exc:
        raise InvalidBenefit([RuleProblem("$", str(exc))]) from None
    except msgspec.DecodeError:
        raise MalformedJson("The request body is not valid JSON") from None
    draft = decode_draft(bytes(body.benefit))
    person = _person(bytes(body.person))
    fields = {f: getattr(draft, f) for f in BenefitDraft.__struct_fields__ if f not in ("status", "venue_ids")}
    # A throw-away id: the compiled rule is cached by (id, version) in a bounded cache.
    version = BenefitVersion(benefit_id=uuid4(), version=0, status="draft", created_at=at, **fields)
    explanation = explain(version, person, at)
    zh, en = describe(draft.rule)
    window = window_open(version, at)
    return RulePreview(
        rule_summary_zh=zh,
        rule_summary_en=en,
        decision=explanation.decision,
        clauses=explanation.clauses,
        companions_allowed=companions_allowed(version, person, at),
        window_open_now=bool(window.open),
        window_zh=window.why_zh,
        window_en=window.why_en,
    )
