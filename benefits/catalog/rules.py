"""The eligibility rule language: JSON data, validated with paths, compiled once, self-explaining.

A rule is a tree of expressions, each a JSON object tagged by ``op``::

    {"op": "all", "all": [
        {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
        {"op": "disability_grade", "min": 1, "max": 4}
    ]}

| op | fields | holds when |
|---|---|---|
| ``always`` | | always (a public benefit) |
| ``all`` / ``any`` | ``all`` / ``any``: list of rules | every / at least one child holds |
| ``not`` | ``not``: rule | the child does not hold |
| ``has_category`` | ``category`` | the person has the category (``VETERAN`` includes its sub-kinds) |
| ``has_any_category`` | ``categories`` | the person has at least one of them (same expansion) |
| ``disability_grade`` | ``min``, ``max`` (1..10) | the person's grade is within [min, max] |
| ``disability_cause`` | ``causes`` | 因战 / 因公 / 因病 is one of them |
| ``card_status`` / ``card_kind`` | ``statuses`` / ``kinds`` | the 优待证 status / kind is one of them |
| ``card_province`` | ``eq`` or ``ne`` | the card's issuing province equals / differs from it |
| ``district`` | ``districts`` | the person's district is one of them |
| ``age`` | ``min`` and/or ``max`` | the age in full years on the evaluation day is within the bounds |
| ``on_days`` | ``days``: ``MM-DD`` or a named day | the evaluation day (Shanghai) is one of them |
| ``family_relation`` | ``relations``, ``of`` | the person has such a relative (see below) |

``family_relation`` states 军属/三属 rules as the policy words them: it holds when the person has
a tie of one of ``relations`` (from the roster's ``relations`` column, `identity.Person.relations`)
to a serviceman who, when ``of`` is given, has one of those categories (a serving member, status
ACTIVE, is ACTIVE_SERVICE; ``VETERAN`` includes its sub-kinds as everywhere).

Rules are decoded with msgspec (type, range and unknown-field errors carry the JSON path of the
bad node), then checked for what types cannot say (min ≤ max, exactly one of eq/ne, depth).
`compile_rule` turns a tree into closures once; evaluating it costs a few microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, Final, Literal, Union

import msgspec

from foundation.structs import Input, Record
from benefits.catalog.errors import InvalidRule, RuleProblem
from benefits.catalog.periods import NAMED_DAYS, is_named_day
import identity
from identity import Person
from foundation.vocabulary import (
    CARD_KINDS,
    CARD_STATUSES,
    CATEGORIES,
    DISABILITY_CAUSES,
    SHANGHAI_DISTRICTS,
    VETERAN_SUBKINDS,
)

__all__ = (
    "MAX_DEPTH",
    "MAX_NODES",
    "Age",
    "All",
    "Always",
    "AnyOf",
    "CardKind",
    "CardProvince",
    "CardStatusIs",
    "ClauseResult",
    "CompiledRule",
    "DisabilityCause",
    "DisabilityGrade",
    "District",
    "Expr",
    "FamilyRelation",
    "HasAnyCategory",
    "HasCategory",
    "Not",
    "OnDays",
    "PersonLike",
    "compile_rule",
    "describe",
    "parse_rule",
    "rule_problems",
)

MAX_DEPTH: Final = 12
MAX_NODES: Final = 200

CategoryCode = Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]
DistrictCode = Literal[tuple(SHANGHAI_DISTRICTS)]  # type: ignore[valid-type]
CauseCode = Literal[tuple(DISABILITY_CAUSES)]  # type: ignore[valid-type]
CardKindCode = Literal[tuple(CARD_KINDS)]  # type: ignore[valid-type]
CardStatusCode = Literal[tuple(CARD_STATUSES)]  # type: ignore[valid-type]
Relation = identity.RelationKind
Grade = Annotated[int, msgspec.Meta(ge=1, le=10)]
Years = Annotated[int, msgspec.Meta(ge=0, le=150)]
Province = Annotated[str, msgspec.Meta(pattern=r"^\d{2}0000$")]
DaySpec = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^((0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])|" + "|".join(NAMED_DAYS) + ")$",
        description="MM-DD or a named day (ARMY_DAY, MARTYRS_DAY, ...)",
    ),
]


def _items(kind, *, most: int = 50):
    return Annotated[list[kind], msgspec.Meta(min_length=1, max_length=most)]


PersonLike = Person
"""What a rule reads: the `identity.Person` that identity hands out (no ID number or name in it)."""


class _Node(Input, omit_defaults=True, tag_field="op"):
    """A rule node: frozen (shared by every evaluation), strict (a typo is an error, not a no-op)."""


class Always(_Node, tag="always"):
    pass


class All(_Node, tag="all"):
    all: _items(Expr)


class AnyOf(_Node, tag="any"):
    any: _items(Expr)


class Not(_Node, tag="not"):
    not_: Expr = msgspec.field(name="not")


class HasCategory(_Node, tag="has_category"):
    category: CategoryCode


class HasAnyCategory(_Node, tag="has_any_category"):
    categories: _items(CategoryCode)


class DisabilityGrade(_Node, tag="disability_grade"):
    min: Grade = 1
    max: Grade = 10


class DisabilityCause(_Node, tag="disability_cause"):
    causes: _items(CauseCode)


class CardStatusIs(_Node, tag="card_status"):
    statuses: _items(CardStatusCode)


class CardKind(_Node, tag="card_kind"):
    kinds: _items(CardKindCode)


class CardProvince(_Node, tag="card_province"):
    eq: Province | None = None
    ne: Province | None = None


class District(_Node, tag="district"):
    districts: _items(DistrictCode)


class Age(_Node, tag="age"):
    min: Years | None = None
    max: Years | None = None


class OnDays(_Node, tag="on_days"):
    days: _items(DaySpec, most=366)


class FamilyRelation(_Node, tag="family_relation"):
    relations: _items(Relation)
    of: list[CategoryCode] = msgspec.field(default_factory=list)


Expr = Union[
    Always,
    All,
    AnyOf,
    Not,
    HasCategory,
    HasAnyCategory,
    DisabilityGrade,
    DisabilityCause,
    CardStatusIs,
    CardKind,
    CardProvince,
    District,
    Age,
    OnDays,
    FamilyRelation,
]

# --------------------------------------------------------------------------------------------
# Validation

_AT = re.compile(r" - at `(\$[^`]*)`$")


def problem_from_validation(exc: msgspec.ValidationError, base: str = "$") -> RuleProblem:
    """A msgspec error as (path, message); `base` replaces the decoder's root `$`."""
    text = str(exc)
    match = _AT.search(text)
    if match:
        return RuleProblem(path=base + match[1][1:], message=text[: match.start()])
    return RuleProblem(path=base, message=text)


def rule_problems(rule: Expr, path: str = "$") -> list[RuleProblem]:
    """What the types cannot say: bounds in order, exactly one of eq/ne, size and depth limits."""
    problems: list[RuleProblem] = []
    count = 0

    def walk(node: Expr, at: str, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > MAX_DEPTH:
            problems.append(RuleProblem(at, f"rule nests deeper than {MAX_DEPTH} levels"))
            return
        if isinstance(node, All):
            for i, child in enumerate(node.all):
                walk(child, f"{at}.all[{i}]", depth + 1)
        elif isinstance(node, AnyOf):
            for i, child in enumerate(node.any):
                walk(child, f"{at}.any[{i}]", depth + 1)
        elif isinstance(node, Not):
            walk(node.not_, f"{at}.not", depth + 1)
        elif isinstance(node, DisabilityGrade):
            if node.min > node.max:
                problems.append(RuleProblem(f"{at}.min", f"min {node.min} is greater than max {node.max}"))
        elif isinstance(node, Age):
            if node.min is None and node.max is None:
                problems.append(RuleProblem(at, "age needs min, max or both"))
            elif node.min is not None and node.max is not None and node.min > node.max:
                problems.append(RuleProblem(f"{at}.min", f"min {node.min} is greater than max {node.max}"))
        elif isinstance(node, CardProvince):
            if (node.eq is None) == (node.ne is None):
                problems.append(RuleProblem(at, "card_province needs exactly one of eq or ne"))
        elif isinstance(node, OnDays):
            for i, day in enumerate(node.days):
                if day not in NAMED_DAYS and not _valid_month_day(day):
                    problems.append(RuleProblem(f"{at}.days[{i}]", f"{day} is not a day of the year"))

    walk(rule, path, 1)
    if count > MAX_NODES:
        problems.insert(0, RuleProblem(path, f"rule has {count} nodes; at most {MAX_NODES}"))
    return problems


def _valid_month_day(value: str) -> bool:
    try:
        date(2024, int(value[:2]), int(value[3:]))  # a leap year, so 02-29 is a day of the year
    except ValueError:
        return False
    return True


def parse_rule(raw: object, *, path: str = "$") -> Expr:
    """A rule from JSON bytes/str or decoded JSON; raises InvalidRule naming the bad node's path."""
    try:
        if isinstance(raw, (bytes, bytearray, memoryview, str)):
            rule = msgspec.json.decode(raw, type=Expr)
        else:
            rule = msgspec.convert(raw, Expr)
    except msgspec.ValidationError as exc:
        raise InvalidRule([problem_from_validation(exc, path)]) from None
    except msgspec.DecodeError as exc:
        raise InvalidRule([RuleProblem(path, f"not JSON: {exc}")]) from None
    except RecursionError:
        raise InvalidRule([RuleProblem(path, f"rule nests deeper than {MAX_DEPTH} levels")]) from None
    problems = rule_problems(rule, path)
    if problems:
        raise InvalidRule(problems)
    return rule


# --------------------------------------------------------------------------------------------
# Descriptions: what each node requires, in Chinese and English


def _category_zh(code: str) -> str:
    zh = CATEGORIES[code][0]
    return zh + "（含转业干部、退役士兵等各类退役军人）" if code == "VETERAN" else zh


def _category_en(code: str) -> str:
    en = f"{code} ({CATEGORIES[code][1]})"
    return en + " including its sub-kinds" if code == "VETERAN" else en


def _day_zh(day: str) -> str:
    if day in NAMED_DAYS:
        return NAMED_DAYS[day][1]
    return f"{int(day[:2])}月{int(day[3:])}日"


def _day_en(day: str) -> str:
    return NAMED_DAYS[day][2] if day in NAMED_DAYS else day


def describe(node: Expr) -> tuple[str, str]:
    """What the node requires, as (中文, English)."""
    if isinstance(node, Always):
        return "面向所有人", "open to everyone"
    if isinstance(node, All):
        parts = [describe(child) for child in node.all]
        if len(parts) == 1:
            return parts[0]
        return "同时满足：" + "；".join(p[0] for p in parts), "all of: " + "; ".join(p[1] for p in parts)
    if isinstance(node, AnyOf):
        parts = [describe(child) for child in node.any]
        if len(parts) == 1:
            return parts[0]
        return "满足其一：" + "；".join(p[0] for p in parts), "any of: " + "; ".join(p[1] for p in parts)
    if isinstance(node, Not):
        zh, en = describe(node.not_)
        return f"不属于（{zh}）", f"not ({en})"
    if isinstance(node, HasCategory):
        return f"身份为{_category_zh(node.category)}", f"category {_category_en(node.category)}"
    if isinstance(node, HasAnyCategory):
        return _listing(("身份为以下之一：", "、", _category_zh), ("one of the categories ", ", ", _category_en), node.categories)
    if isinstance(node, DisabilityGrade):
        if node.min == node.max:
            return f"残疾等级为{node.min}级", f"disability grade {node.min}"
        return f"残疾等级为{node.min}至{node.max}级", f"disability grade {node.min} to {node.max}"
    if isinstance(node, DisabilityCause):
        return _one_of("致残性质为", "disability ", DISABILITY_CAUSES, node.causes, english_names=True)
    if isinstance(node, CardStatusIs):
        return _one_of("优待证状态为", "preferential card status ", CARD_STATUSES, node.statuses)
    if isinstance(node, CardKind):
        return _one_of("持有", "card kind ", CARD_KINDS, node.kinds)
    if isinstance(node, CardProvince):
        if node.eq is not None:
            return f"优待证发证省份为{_province_zh(node.eq)}", f"card issued by province {node.eq}"
        return f"优待证发证省份不是{_province_zh(node.ne)}", f"card issued by a province other than {node.ne}"
    if isinstance(node, District):
        return _one_of("所属区为", "district ", SHANGHAI_DISTRICTS, node.districts, english_names=True)
    if isinstance(node, Age):
        if node.max is None:
            return f"年满{node.min}周岁", f"aged {node.min} or over"
        if node.min is None:
            return f"不超过{node.max}周岁", f"aged {node.max} or under"
        return f"年龄在{node.min}至{node.max}周岁之间", f"aged {node.min} to {node.max}"
    if isinstance(node, OnDays):
        return _listing(("仅限", "、", _day_zh), ("only on ", ", ", _day_en), node.days)
    if isinstance(node, FamilyRelation):
        relations_zh = "、".join(_RELATIONS_ZH[r] for r in node.relations)
        relations_en = "/".join(node.relations)
        of_zh = "（" + "或".join(_category_zh(c) for c in node.of) + "）" if node.of else ""
        of_en = " who is " + " or ".join(_category_en(c) for c in node.of) if node.of else ""
        return (
            f"须为军人{of_zh}的{relations_zh}（名册登记的亲属关系）",
            f"a {relations_en} of a serviceman{of_en}, as the roster records",
        )
    raise TypeError(f"unknown rule node {type(node).__name__}")


_RELATIONS_ZH: dict[str, str] = {
    "SPOUSE": "配偶", "PARENT": "父母", "CHILD": "子女", "SIBLING_DEPENDENT": "依靠其生活的兄弟姐妹", "PARENT_IN_LAW": "岳父母或公婆",
}


def _one_of(
    zh: str, en: str, names: dict[str, tuple[str, str]], codes: Sequence[str], *, english_names: bool = False
) -> tuple[str, str]:
    """"致残性质为因战或因公" / "disability war (WAR) or duty (DUTY)": a choice of vocabulary codes."""
    english = (lambda c: f"{names[c][1]} ({c})") if english_names else str
    return _listing((zh, "或", lambda c: names[c][0]), (en, " or ", english), codes)


_Wording = tuple[str, str, Callable[[Any], str]]
"""How one language lists items: a lead-in, a separator and the name of one item."""


def _listing(zh: _Wording, en: _Wording, items: Sequence[Any]) -> tuple[str, str]:
    """A lead-in followed by the items named and joined, in Chinese and in English."""
    return tuple(lead + sep.join(name(item) for item in items) for lead, sep, name in (zh, en))  # type: ignore[return-value]


def _province_zh(code: str | None) -> str:
    return "上海（310000）" if code == "310000" else str(code)


# --------------------------------------------------------------------------------------------
# Compilation: closures built once per rule; each returns (held, deciding clause)


class Clause(Record):
    """A node of a compiled rule: where it is and what it requires."""

    path: str
    op: str
    text_zh: str
    text_en: str


class ClauseResult(Record):
    """One node of an explanation: did it hold for this person on this day."""

    path: str
    op: str
    held: bool
    text_zh: str
    text_en: str


Check = Callable[[PersonLike, date], "tuple[bool, Clause]"]


class CompiledRule:
    """A rule ready to evaluate: `check(person, day) -> (held, deciding clause)`.

    The deciding clause is the one that settled the answer: for a failed `all`, its first
    failing child; for a held `any`, its first holding child; otherwise the node itself.
    """

    __slots__ = ("check", "rule", "root")

    def __init__(self, rule: Expr, path: str = "$") -> None:
        self.rule = rule
        self.root = _clause(rule, path)
        self.check: Check = _compile(rule, path)

    def explain(self, person: PersonLike, day: date) -> list[ClauseResult]:
        """Every node's result, depth first (no short cut), for showing a person why."""
        out: list[ClauseResult] = []
        _trace(self.rule, self.root.path, person, day, out)
        return out


def _clause(node: Expr, path: str) -> Clause:
    zh, en = describe(node)
    return Clause(path, type(node).__struct_config__.tag, zh, en)


def _categories(codes) -> frozenset[str]:
    wanted = set(codes)
    if "VETERAN" in wanted:
        wanted |= VETERAN_SUBKINDS
    return frozenset(wanted)


def _age(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _day_matcher(days) -> Callable[[date], bool]:
    fixed = {(int(d[:2]), int(d[3:])) for d in days if d not in NAMED_DAYS}
    named = [d for d in days if d in NAMED_DAYS]
    for name in list(named):
        month_day = NAMED_DAYS[name][0]
        if month_day is not None:
            fixed.add((int(month_day[:2]), int(month_day[3:])))
            named.remove(name)

    def matches(day: date) -> bool:
        return (day.month, day.day) in fixed or any(is_named_day(name, day) for name in named)

    return matches


def _leaf_test(node: Expr) -> Callable[[PersonLike, date], bool]:
    """The predicate of a leaf node."""
    if isinstance(node, Always):
        return lambda p, d: True
    if isinstance(node, (HasCategory, HasAnyCategory)):
        wanted = _categories([node.category] if isinstance(node, HasCategory) else node.categories)
        return lambda p, d: not wanted.isdisjoint(p.categories)
    if isinstance(node, DisabilityGrade):
        low, high = node.min, node.max
        return lambda p, d: p.disability_grade is not None and low <= p.disability_grade <= high
    if isinstance(node, DisabilityCause):
        causes = frozenset(node.causes)
        return lambda p, d: p.disability_cause in causes
    if isinstance(node, CardStatusIs):
        statuses = frozenset(node.statuses)
        return lambda p, d: p.card_status in statuses
    if isinstance(node, CardKind):
        kinds = frozenset(node.kinds)
        return lambda p, d: p.card_kind in kinds
    if isinstance(node, CardProvince):
        if node.eq is not None:
            eq = node.eq
            return lambda p, d: p.card_province == eq
        ne = node.ne
        # A person without a card has no issuing province to compare, so "not Shanghai" fails.
        return lambda p, d: bool(p.card_province) and p.card_kind != "NONE" and p.card_province != ne
    if isinstance(node, District):
        districts = frozenset(node.districts)
        return lambda p, d: p.district in districts
    if isinstance(node, Age):
        low = node.min if node.min is not None else 0
        high = node.max if node.max is not None else 10_000
        return lambda p, d: p.birth_date is not None and low <= _age(p.birth_date, d) <= high
    if isinstance(node, OnDays):
        matches = _day_matcher(node.days)
        return lambda p, d: matches(d)
    if isinstance(node, FamilyRelation):
        kinds = frozenset(node.relations)
        of = _categories(node.of) if node.of else None
        return lambda p, d: any(
            tie.relation in kinds and (of is None or not of.isdisjoint(tie.member_categories)) for tie in p.relations
        )
    raise TypeError(f"unknown rule node {type(node).__name__}")


def _compile(node: Expr, path: str) -> Check:
    me = _clause(node, path)
    if isinstance(node, All):
        children = tuple(_compile(c, f"{path}.all[{i}]") for i, c in enumerate(node.all))

        def check_all(p, d):
            for child in children:
                held, why = child(p, d)
                if not held:
                    return False, why
            return True, me

        return check_all
    if isinstance(node, AnyOf):
        children = tuple(_compile(c, f"{path}.any[{i}]") for i, c in enumerate(node.any))

        def check_any(p, d):
            for child in children:
                held, why = child(p, d)
                if held:
                    return True, why
            return False, me

        return check_any
    if isinstance(node, Not):
        inner = _compile(node.not_, f"{path}.not")

        def check_not(p, d):
            return not inner(p, d)[0], me

        return check_not
    test = _leaf_test(node)
    true, false = (True, me), (False, me)

    def check_leaf(p, d):
        return true if test(p, d) else false

    return check_leaf


def _trace(node: Expr, path: str, person: PersonLike, day: date, out: list[ClauseResult]) -> bool:
    index = len(out)
    out.append(None)  # type: ignore[arg-type]  # placeholder: parents come before children
    if isinstance(node, All):
        held = all([_trace(c, f"{path}.all[{i}]", person, day, out) for i, c in enumerate(node.all)])
    elif isinstance(node, AnyOf):
        held = any([_trace(c, f"{path}.any[{i}]", person, day, out) for i, c in enumerate(node.any)])
    elif isinstance(node, Not):
        held = not _trace(node.not_, f"{path}.not", person, day, out)
    else:
        held = _leaf_test(node)(person, day)
    clause = _clause(node, path)
    out[index] = ClauseResult(path, clause.op, held, clause.text_zh, clause.text_en)
    return held


def compile_rule(rule: Expr, path: str = "$") -> CompiledRule:
    return CompiledRule(rule, path)
