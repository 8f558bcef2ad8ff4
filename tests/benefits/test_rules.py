"""The rule language: decoding with paths, evaluation, explanations, and properties over random rules."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benefits.catalog import BenefitVersion, InvalidRule, evaluate, explain, parse_rule
from benefits.catalog.rules import Expr
from foundation.vocabulary import (
    CARD_KINDS,
    CARD_STATUSES,
    CATEGORIES,
    DISABILITY_CAUSES,
    SHANGHAI_DISTRICTS,
    VETERAN_SUBKINDS,
)
from identity import Person
from tests.factories.people import person

AT = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def version_with(rule: dict, **spec) -> BenefitVersion:
    return msgspec.convert(
        {
            "code": "X1",
            "name_zh": "测试",
            "name_en": "test",
            "domain": "culture",
            "value": {"kind": "free"},
            "rule": rule,
            "benefit_id": str(uuid.uuid4()),
            "version": 1,
            "status": "active",
            "created_at": "2026-01-01T00:00:00Z",
            **spec,
        },
        BenefitVersion,
    )


DISABLED_1_4 = {
    "op": "all",
    "all": [
        {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
        {"op": "disability_grade", "min": 1, "max": 4},
    ],
}


def test_a_grade_2_disabled_serviceman_satisfies_grades_1_to_4():
    decision = evaluate(version_with(DISABLED_1_4), person("DISABLED_SERVICEMAN", disability_grade=2), AT)
    assert decision.eligible and decision.reason_code == "eligible"
    assert decision.clause == "$.rule"
    assert decision.message_zh.startswith("符合条件")
    assert decision.value == msgspec.convert({"kind": "free"}, type(decision.value))


def test_a_failed_all_names_its_first_failing_clause():
    decision = evaluate(version_with(DISABLED_1_4), person("DISABLED_SERVICEMAN", disability_grade=7), AT)
    assert not decision.eligible
    assert decision.clause == "$.rule.all[1]"
    assert "1至4级" in decision.message_zh and "disability grade 1 to 4" in decision.message_en
    plain = evaluate(version_with(DISABLED_1_4), person("VETERAN"), AT)
    assert plain.clause == "$.rule.all[0]"
    assert "残疾军人" in plain.message_zh and "DISABLED_SERVICEMAN" in plain.message_en


@pytest.mark.parametrize("sub_kind", sorted(VETERAN_SUBKINDS))
def test_veteran_includes_its_sub_kinds(sub_kind):
    rule = {"op": "has_category", "category": "VETERAN"}
    assert evaluate(version_with(rule), person(sub_kind), AT).eligible
    assert not evaluate(version_with(rule), person("ACTIVE_SERVICE"), AT).eligible


def test_a_held_any_names_the_child_that_held():
    rule = {
        "op": "any",
        "any": [
            {"op": "has_category", "category": "ACTIVE_SERVICE"},
            {"op": "has_any_category", "categories": ["MARTYR_FAMILY", "DUTY_DEATH_FAMILY"]},
        ],
    }
    decision = evaluate(version_with(rule), person("DUTY_DEATH_FAMILY"), AT)
    assert decision.eligible and decision.clause == "$.rule.any[1]"
    failed = evaluate(version_with(rule), person("VETERAN"), AT)
    assert not failed.eligible and failed.clause == "$.rule"


def test_age_is_counted_in_full_years_on_the_shanghai_day():
    rule = {"op": "age", "min": 60}
    # 2026-11-26T16:30Z is already 2026-11-27 in Shanghai: the 60th birthday.
    at = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    assert evaluate(version_with(rule), person(birth_date=date(1966, 11, 27)), at).eligible
    assert not evaluate(version_with(rule), person(birth_date=date(1966, 11, 28)), at).eligible
    assert not evaluate(version_with(rule), person(birth_date=None), at).eligible


def test_card_province_ne_and_on_days():
    other = {"op": "card_province", "ne": "310000"}
    assert evaluate(version_with(other), person("VETERAN", card_province="320000"), AT).eligible
    assert not evaluate(version_with(other), person("VETERAN", card_province="310000"), AT).eligible
    assert not evaluate(version_with(other), person("VETERAN", card_kind="NONE", card_province="320000"), AT).eligible
    army_day = {"op": "on_days", "days": ["ARMY_DAY"]}
    assert evaluate(version_with(army_day), person(), datetime(2026, 8, 1, 1, tzinfo=UTC)).eligible
    assert not evaluate(version_with(army_day), person(), datetime(2026, 8, 1, 16, 1, tzinfo=UTC)).eligible


def test_family_relation_holds_for_a_tie_of_that_kind_to_such_a_member_and_says_why_not():
    from identity import Kinship

    rule = {"op": "family_relation", "relations": ["SPOUSE"], "of": ["ACTIVE_SERVICE"]}
    serving = Kinship("SPOUSE", "ACTIVE", frozenset({"ACTIVE_SERVICE"}))
    assert evaluate(version_with(rule), person("SERVICE_FAMILY", relations=(serving,)), AT).eligible
    decision = evaluate(version_with(rule), person("SERVICE_FAMILY"), AT)
    assert not decision.eligible
    assert "SPOUSE of a serviceman who is ACTIVE_SERVICE" in decision.message_en and "配偶" in decision.message_zh
    assert not evaluate(version_with(rule), person(relations=(Kinship("PARENT", "ACTIVE", serving.member_categories),)), AT).eligible
    martyr = Kinship("SPOUSE", "MARTYR", frozenset())
    assert not evaluate(version_with(rule), person(relations=(martyr,)), AT).eligible
    any_member = {"op": "family_relation", "relations": ["SPOUSE", "PARENT"]}
    assert evaluate(version_with(any_member), person(relations=(martyr,)), AT).eligible
    veteran_kin = {"op": "family_relation", "relations": ["CHILD"], "of": ["VETERAN"]}
    child = Kinship("CHILD", "ACTIVE", frozenset({"COMBAT_VETERAN", "ACTIVE_SERVICE"}))
    assert evaluate(version_with(veteran_kin), person(relations=(child,)), AT).eligible


def test_tiers_pick_the_first_value_that_holds():
    version = version_with(
        {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
        value={"kind": "percent_off", "percent": 50},
        tiers=[{"when": {"op": "disability_grade", "min": 1, "max": 6}, "value": {"kind": "free"}}],
    )
    assert evaluate(version, person("DISABLED_SERVICEMAN", disability_grade=3), AT).value.__struct_config__.tag == "free"
    assert evaluate(version, person("DISABLED_SERVICEMAN", disability_grade=8), AT).value.percent == 50


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"op": "all", "all": [{"op": "always"}, {"op": "always"}, {"op": "disability_grade", "min": 0}]}, "$.rule.all[2].min"),
        ({"op": "all", "all": []}, "$.rule.all"),
        ({"op": "nope"}, "$.rule.op"),
        ({"op": "has_category", "category": "GENERAL"}, "$.rule.category"),
        ({"op": "not", "not": {"op": "district", "districts": ["999999"]}}, "$.rule.not.districts[0]"),
        ({"op": "disability_grade", "min": 5, "max": 2}, "$.rule.min"),
        ({"op": "card_province", "eq": "310000", "ne": "320000"}, "$.rule"),
        ({"op": "age"}, "$.rule"),
        ({"op": "on_days", "days": ["02-30"]}, "$.rule.days[0]"),
        ({"op": "always", "extra": 1}, "$.rule"),
        ([1, 2], "$.rule"),
    ],
)
def test_invalid_rules_name_the_bad_node(rule, path):
    with pytest.raises(InvalidRule) as caught:
        parse_rule(rule, path="$.rule")
    assert caught.value.problems[0].path == path
    assert caught.value.extensions["errors"][0]["path"] == path


def test_too_deep_rules_are_refused_not_crashed():
    deep: dict = {"op": "always"}
    for _ in range(50):
        deep = {"op": "not", "not": deep}
    with pytest.raises(InvalidRule):
        parse_rule(deep)
    bomb = b'{"op":"not","not":' * 20000 + b'{"op":"always"}' + b"}" * 20000
    with pytest.raises(InvalidRule):
        parse_rule(bomb)


# --- properties ---------------------------------------------------------------------------------

categories = st.sampled_from(sorted(CATEGORIES))
leaves = st.one_of(
    st.just({"op": "always"}),
    st.builds(lambda c: {"op": "has_category", "category": c}, categories),
    st.builds(lambda cs: {"op": "has_any_category", "categories": cs}, st.lists(categories, min_size=1, max_size=3)),
    st.tuples(st.integers(1, 10), st.integers(1, 10)).map(
        lambda t: {"op": "disability_grade", "min": min(t), "max": max(t)}
    ),
    st.builds(
        lambda cs: {"op": "disability_cause", "causes": cs},
        st.lists(st.sampled_from(sorted(DISABILITY_CAUSES)), min_size=1, max_size=3),
    ),
    st.builds(
        lambda s: {"op": "card_status", "statuses": s},
        st.lists(st.sampled_from(sorted(CARD_STATUSES)), min_size=1, max_size=2),
    ),
    st.builds(lambda k: {"op": "card_kind", "kinds": [k]}, st.sampled_from(sorted(CARD_KINDS))),
    st.builds(lambda p, neg: {"op": "card_province", ("ne" if neg else "eq"): p}, st.sampled_from(["310000", "320000"]), st.booleans()),
    st.builds(
        lambda ds: {"op": "district", "districts": ds},
        st.lists(st.sampled_from(sorted(SHANGHAI_DISTRICTS)), min_size=1, max_size=3),
    ),
    st.tuples(st.integers(0, 100), st.integers(0, 100)).map(lambda t: {"op": "age", "min": min(t), "max": max(t)}),
    st.builds(lambda d: {"op": "on_days", "days": [d]}, st.sampled_from(["08-01", "ARMY_DAY", "11-27", "SPRING_FESTIVAL"])),
)
rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda cs: {"op": "all", "all": cs}),
        st.lists(children, min_size=1, max_size=3).map(lambda cs: {"op": "any", "any": cs}),
        children.map(lambda c: {"op": "not", "not": c}),
    ),
    max_leaves=12,
)
people = st.builds(
    lambda cats, grade, cause, kind, status, province, district, birth: person(
        *cats,
        disability_grade=grade,
        disability_cause=cause,
        card_kind=kind,
        card_status=status,
        card_province=province,
        district=district,
        birth_date=birth,
    ),
    st.frozensets(categories, max_size=3),
    st.none() | st.integers(1, 10),
    st.none() | st.sampled_from(sorted(DISABILITY_CAUSES)),
    st.sampled_from(sorted(CARD_KINDS)),
    st.sampled_from(sorted(CARD_STATUSES)),
    st.sampled_from(["310000", "320000"]),
    st.none() | st.sampled_from(sorted(SHANGHAI_DISTRICTS)),
    st.none() | st.dates(date(1920, 1, 1), date(2020, 12, 31)),
)
instants = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))


def _reference(rule: dict, p: Person, day: date) -> bool:
    """An independent, naive reading of the rule's meaning."""
    op = rule["op"]
    if op == "all":
        return all(_reference(c, p, day) for c in rule["all"])
    if op == "any":
        return any(_reference(c, p, day) for c in rule["any"])
    if op == "not":
        return not _reference(rule["not"], p, day)
    if op == "always":
        return True
    if op in ("has_category", "has_any_category"):
        wanted = set(rule.get("categories") or [rule.get("category")])
        have = set(p.categories) | ({"VETERAN"} if p.categories & VETERAN_SUBKINDS else set())
        return bool(wanted & have)
    if op == "disability_grade":
        return p.disability_grade is not None and rule["min"] <= p.disability_grade <= rule["max"]
    if op == "disability_cause":
        return p.disability_cause in rule["causes"]
    if op == "card_status":
        return p.card_status in rule["statuses"]
    if op == "card_kind":
        return p.card_kind in rule["kinds"]
    if op == "card_province":
        if "eq" in rule:
            return p.card_province == rule["eq"]
        return p.card_kind != "NONE" and p.card_province != rule["ne"]
    if op == "district":
        return p.district in rule["districts"]
    if op == "age":
        if p.birth_date is None:
            return False
        age = day.year - p.birth_date.year - ((day.month, day.day) < (p.birth_date.month, p.birth_date.day))
        return rule["min"] <= age <= rule["max"]
    if op == "on_days":
        from benefits.catalog.periods import is_named_day

        d = rule["days"][0]
        return is_named_day(d, day) if d.isalpha() or "_" in d else f"{day.month:02d}-{day.day:02d}" == d
    raise AssertionError(op)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(rules, people, instants)
def test_evaluate_matches_the_meaning_and_explain_agrees(rule, p, at):
    version = version_with(rule)
    decision = evaluate(version, p, at)
    from benefits.catalog.periods import local_date

    assert decision.eligible == _reference(rule, p, local_date(at))
    explanation = explain(version, p, at)
    assert explanation.decision == decision
    root = explanation.clauses[0]
    assert root.path == "$.rule" and root.held == decision.eligible
    # The deciding clause is in the trace and its result supports the verdict.
    by_path = {c.path: c for c in explanation.clauses}
    assert decision.clause in by_path
    decisive = by_path[decision.clause]
    if decisive.op not in ("all", "any", "not"):
        assert decisive.held == decision.eligible


@settings(max_examples=200, deadline=None)
@given(rules)
def test_rules_round_trip_through_json(rule):
    parsed = parse_rule(rule)
    encoded = msgspec.json.encode(parsed)
    assert parse_rule(encoded) == parsed
    assert msgspec.json.decode(encoded, type=Expr) == parsed


def _mutate(draw, rule):
    """Break one node of a valid rule: a wrong type, an unknown op or field, a bad bound."""
    nodes = []

    def walk(node, path):
        nodes.append((node, path))
        for key in ("all", "any"):
            for i, child in enumerate(node.get(key, [])):
                walk(child, f"{path}.{key}[{i}]")
        if "not" in node:
            walk(node["not"], f"{path}.not")

    walk(rule, "$")
    node, path = draw(st.sampled_from(nodes))
    breakage = draw(st.sampled_from(["op", "unknown", "type", "empty"]))
    if breakage == "op":
        node["op"] = draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in _OPS))
    elif breakage == "unknown":
        node["surprise"] = 1
    elif breakage == "type":
        for key in ("all", "any", "not", "category", "categories", "min", "days", "districts", "causes"):
            if key in node:
                node[key] = "wrong"
                break
        else:
            node["op"] = 42
    else:
        node.clear()
    return path


_OPS = {
    "always", "all", "any", "not", "has_category", "has_any_category", "disability_grade", "disability_cause",
    "card_status", "card_kind", "card_province", "district", "age", "on_days", "family_relation",
}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_broken_rules_are_refused_with_a_path_inside_the_broken_node(data):
    rule = data.draw(rules)
    broken = msgspec.json.decode(msgspec.json.encode(rule))  # a copy without shared sub-dicts
    path = _mutate(data.draw, broken)
    with pytest.raises(InvalidRule) as caught:
        parse_rule(broken, path="$.rule")
    reported = caught.value.problems[0].path
    assert reported.startswith("$.rule")
    # The reported node is the broken one or inside it (msgspec names the bad field).
    assert reported.startswith("$.rule" + path[1:]), (reported, path)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3)))
def test_arbitrary_json_never_crashes_the_parser(value):
    try:
        parse_rule(value, path="$.rule")
    except InvalidRule as refused:
        assert refused.problems[0].path.startswith("$.rule")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 50) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)
_DRAFT_FIELDS = ["code", "name_zh", "domain", "value", "rule", "tiers", "companions", "caps", "windows", "status", "venue_ids"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_DRAFT_FIELDS), json_values)
def test_a_benefit_with_any_field_broken_is_refused_with_a_path(field, value):
    from benefits.catalog import InvalidBenefit, decode_draft

    body = {
        "code": "T1",
        "name_zh": "测试",
        "name_en": "test",
        "domain": "transit",
        "value": {"kind": "free"},
        "rule": {"op": "always"},
        field: value,
    }
    try:
        decode_draft(msgspec.json.encode(body))
    except InvalidBenefit as refused:
        assert refused.problems[0].path.startswith("$")
