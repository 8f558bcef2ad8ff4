"""Catalog rules: validating and versioning benefits, reading the version in force."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg
import msgspec

from foundation.structs import Record
from foundation.audit import write_audit
from foundation.outbox import write_event
from foundation.cache import LocalCache
from foundation.errors import MalformedJson
from foundation.paging import DEFAULT_LIMIT, Page, decode_cursor, fetch_size, page_of
from benefits.catalog import db
from benefits.catalog.errors import (
    BenefitNotFound,
    CodeTaken,
    InvalidBenefit,
    InvalidRule,
    RuleProblem,
    StatusChangeRefused,
    VersionConflict,
)
from benefits.catalog.rules import MAX_DEPTH, problem_from_validation, rule_problems
from benefits.catalog.types import (
    BenefitDraft,
    BenefitSpec,
    BenefitVersion,
    BenefitView,
    StatusChange,
)

__all__ = (
    "Actor",
    "benefits_at_venue",
    "change_status",
    "create_benefit",
    "create_benefit_json",
    "get_version_or_404",
    "replace_benefit_json",
    "decode_draft",
    "decode_spec",
    "get_benefit",
    "get_benefit_by_code",
    "get_benefit_view",
    "get_version",
    "list_active_benefits",
    "list_benefits_page",
    "patch_benefit",
    "replace_benefit",
    "set_benefit_venues",
    "spec_problems",
)

_RULE_PATHS: Final = ("$.rule", "$.companions.rule")
_VERSION_CACHE_SIZE: Final = 4096

# Which status may follow which. A retired benefit stays retired: the ledger may still point at
# its versions, and a new benefit is the honest way to bring an offer back.
_TRANSITIONS: Final = {
    "draft": {"active", "retired"},
    "active": {"paused", "retired"},
    "paused": {"active", "retired"},
    "retired": set(),
}


class Actor(Record):
    """Who changes the catalog, for the version row and the audit log."""

    kind: str  # admin | system
    id: str
    role: str | None = None
    district: str | None = None


# --- validation ---------------------------------------------------------------------------------


def _is_rule_path(path: str) -> bool:
    if path.startswith(_RULE_PATHS):
        return True
    return path.startswith("$.tiers[") and ".when" in path


def _raise(problems: list[RuleProblem]) -> None:
    if problems:
        raise (InvalidRule if _is_rule_path(problems[0].path) else InvalidBenefit)(problems)


def spec_problems(spec: BenefitSpec) -> list[RuleProblem]:
    """What the types cannot check: rule bounds and depth, ordered ranges, one cap per period."""
    problems = rule_problems(spec.rule, "$.rule")
    for i, tier in enumerate(spec.tiers):
        problems += rule_problems(tier.when, f"$.tiers[{i}].when")
    if spec.companions.rule is not None:
        problems += rule_problems(spec.companions.rule, "$.companions.rule")
    periods = [cap.period for cap in spec.caps]
    for i, period in enumerate(periods):
        if period in periods[:i]:
            problems.append(RuleProblem(f"$.caps[{i}].period", f"a second cap for the period {period}"))
    for i, span in enumerate(spec.windows.date_ranges):
        if span.start > span.end:
            problems.append(RuleProblem(f"$.windows.date_ranges[{i}].from", "from is after to"))
    for i, hours in enumerate(spec.windows.hours):
        if hours.start >= hours.end:
            problems.append(RuleProblem(f"$.windows.hours[{i}].from", "from is not before to"))
    for i, yearly in enumerate(spec.windows.yearly):
        for end, value in (("from", yearly.start), ("to", yearly.end)):
            try:
                datetime(2024, int(value[:2]), int(value[3:]))
            except ValueError:
                problems.append(RuleProblem(f"$.windows.yearly[{i}].{end}", f"{value} is not a day of the year"))
    return problems


def _decode(raw: bytes | str | dict[str, Any], kind: type):
    try:
        if isinstance(raw, dict):
            value = msgspec.convert(raw, kind)
        else:
            value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        _raise([problem_from_validation(exc)])
    except msgspec.DecodeError:
        raise MalformedJson("The request body is not valid JSON") from None
    except RecursionError:
        _raise([RuleProblem("$.rule", f"rule nests deeper than {MAX_DEPTH} levels")])
    _raise(spec_problems(value))
    return value


def decode_draft(raw: bytes | str | dict[str, Any]) -> BenefitDraft:
    """A new benefit from a JSON body; InvalidRule/InvalidBenefit (422) name the bad node's path."""
    return _decode(raw, BenefitDraft)


def decode_spec(raw: bytes | str | dict[str, Any]) -> BenefitSpec:
    """A full benefit definition (PUT) from a JSON body, validated like `decode_draft`."""
    return _decode(raw, BenefitSpec)


# --- reading ------------------------------------------------------------------------------------

_versions: LocalCache[tuple[UUID, int], BenefitVersion] = LocalCache(maxsize=_VERSION_CACHE_SIZE, ttl=None)
"""Benefit versions by (benefit_id, version): a version never changes once written, so no expiry."""


def _version_from_row(row: asyncpg.Record) -> BenefitVersion:
    key = (row["benefit_id"], row["version"])
    found = _versions.get(key)
    if found is None:
        found = msgspec.convert(
            {
                **row["spec"],
                "benefit_id": row["benefit_id"],
                "version": row["version"],
                "status": row["status"],
                "created_at": row["created_at"],
            },
            BenefitVersion,
        )
        _versions.put(key, found)
    return found


async def get_version(conn: asyncpg.Connection, benefit_id: UUID, version: int) -> BenefitVersion | None:
    """A given version of a benefit (e.g. the one a ledger row names); cached, versions never change."""
    cached = _versions.get((benefit_id, version))
    if cached is not None:
        return cached
    row = await db.get_version_row(conn, benefit_id, version)
    return _version_from_row(row) if row else None


async def get_benefit(conn: asyncpg.Connection, benefit_id: UUID) -> BenefitVersion | None:
    """The version in force of a benefit, whatever its status (check `version.is_active`).

    One light query for the pointer; the version itself comes from the process cache after the
    first read. None when there is no such benefit.
    """
    pointer = await db.get_pointer(conn, benefit_id)
    if pointer is None:
        return None
    return await get_version(conn, pointer["id"], pointer["current_version"])


async def get_benefit_by_code(conn: asyncpg.Connection, code: str) -> BenefitVersion | None:
    """The version in force of the benefit with this catalog code (``T1``, ``C3`` …)."""
    pointer = await db.get_pointer_by_code(conn, code)
    if pointer is None:
        return None
    return await get_version(conn, pointer["id"], pointer["current_version"])


async def benefits_at_venue(conn: asyncpg.Connection, venue_id: UUID) -> list[BenefitVersion]:
    """The active benefits linked to a venue, in code order."""
    rows = await db.active_ids_at_venue(conn, venue_id)
    out = []
    for row in rows:
        version = await get_version(conn, row["id"], row["current_version"])
        if version is not None:
            out.append(version)
    return out


async def list_active_benefits(conn: asyncpg.Connection) -> list[BenefitVersion]:
    """Every active benefit's version in force, in code order."""
    out = []
    for row in await db.list_active_pointers(conn):
        version = await get_version(conn, row["id"], row["current_version"])
        if version is not None:
            out.append(version)
    return out


async def _view(conn: asyncpg.Connection, pointer: asyncpg.Record) -> BenefitView:
    version = await get_version(conn, pointer["id"], pointer["current_version"])
    links = await db.list_venue_links(conn, [pointer["id"]])
    return BenefitView(
        **{f: getattr(version, f) for f in BenefitVersion.__struct_fields__},
        venue_ids=[row["venue_id"] for row in links],
        updated_at=pointer["updated_at"],
    )


async def get_benefit_view(conn: asyncpg.Connection, benefit_id: UUID) -> BenefitView:
    pointer = await db.get_pointer(conn, benefit_id)
    if pointer is None:
        raise BenefitNotFound(f"no benefit {benefit_id}")
    return await _view(conn, pointer)


async def list_benefits_page(
    conn: asyncpg.Connection,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    status: str | None = None,
    domain: str | None = None,
) -> Page[BenefitView]:
    """Every benefit (any status), oldest first, `limit` at a time."""
    rows = await db.list_benefit_page(conn, after=decode_cursor(cursor), limit=fetch_size(limit), status=status, domain=domain)
    page = page_of(rows, limit, lambda row: row)
    return Page(items=[await _view(conn, row) for row in page.items], next_cursor=page.next_cursor)


# --- writing ------------------------------------------------------------------------------------


def _spec_json(spec: BenefitSpec) -> dict[str, Any]:
    data = msgspec.to_builtins(spec)
    # A draft's status lives on the version row and its venues in venue_benefits, not in the definition.
    data.pop("status", None)
    data.pop("venue_ids", None)
    return data


async def _audit(conn: asyncpg.Connection, actor: Actor, action: str, benefit_id: UUID, **detail: Any) -> None:
    await write_audit(
        conn, actor_kind=actor.kind, actor_id=actor.id, actor_role=actor.role, actor_district=actor.district,
        action=action, object_kind="benefit",
        object_id=str(benefit_id), detail=detail,
    )
    # Issue 13: every benefit change (a new version, or its venues) reaches the data center.
    await write_event(
        conn, "benefit.version",
        {"action": action, "benefit_id": benefit_id,
         **{k: detail[k] for k in ("code", "version", "previous_version", "status", "venue_ids") if k in detail}},
    )


async def create_benefit(
    conn: asyncpg.Connection,
    draft: BenefitDraft,
    actor: Actor,
    *,
    venue_ids: list[UUID] | None = None,
    benefit_id: UUID | None = None,
) -> BenefitView:
    """A new benefit at version 1 (draft or active); CodeTaken when the code is in use."""
    _raise(spec_problems(draft))
    benefit_id = benefit_id or uuid.uuid4()
    async with conn.transaction():
        try:
            await db.insert_benefit(
                conn, benefit_id=benefit_id, code=draft.code, version=1, status=draft.status, domain=draft.domain
            )
        except asyncpg.UniqueViolationError:
            raise CodeTaken(f"the code {draft.code} is already in use") from None
        await db.insert_version(
            conn,
            benefit_id=benefit_id,
            version=1,
            status=draft.status,
            spec=_spec_json(draft),
            actor_kind=actor.kind,
            actor_id=actor.id,
            note="created",
        )
        venue_ids = venue_ids if venue_ids is not None else draft.venue_ids
        if venue_ids:
            await _link_venues(conn, benefit_id, venue_ids)
        await _audit(conn, actor, "benefit.create", benefit_id, code=draft.code, version=1, status=draft.status)
    return await get_benefit_view(conn, benefit_id)


async def _new_version(
    conn: asyncpg.Connection,
    benefit_id: UUID,
    actor: Actor,
    *,
    action: str,
    spec: BenefitSpec | None = None,
    status: str | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> BenefitView:
    async with conn.transaction():
        pointer = await db.get_pointer(conn, benefit_id, for_update=True)
        if pointer is None:
            raise BenefitNotFound(f"no benefit {benefit_id}")
        if expected_version is not None and expected_version != pointer["current_version"]:
            raise VersionConflict(
                f"the benefit is at version {pointer['current_version']}, not {expected_version}",
                current_version=pointer["current_version"],
            )
        current = await get_version(conn, benefit_id, pointer["current_version"])
        if spec is not None and spec.code != current.code:
            raise InvalidBenefit([RuleProblem("$.code", "the code of a benefit cannot change")])
        if status is not None and status != current.status and status not in _TRANSITIONS[current.status]:
            raise StatusChangeRefused(f"a {current.status} benefit cannot become {status}")
        if pointer["status"] == "retired" and spec is not None:
            raise StatusChangeRefused("a retired benefit cannot change")
        new_spec = spec if spec is not None else current.spec()
        new_status = status or current.status
        version = pointer["current_version"] + 1
        await db.insert_version(
            conn,
            benefit_id=benefit_id,
            version=version,
            status=new_status,
            spec=_spec_json(new_spec),
            actor_kind=actor.kind,
            actor_id=actor.id,
            note=note,
        )
        await db.update_pointer(conn, benefit_id=benefit_id, version=version, status=new_status, domain=new_spec.domain)
        old_json, new_json = _spec_json(current.spec()), _spec_json(new_spec)
        changed = sorted(k for k in set(old_json) | set(new_json) if old_json.get(k) != new_json.get(k))
        # before → after of every changed top-level field (both versions also stay readable for ever).
        await _audit(
            conn, actor, action, benefit_id, code=current.code, version=version, previous_version=version - 1,
            status=new_status, previous_status=current.status, note=note,
            before={k: old_json.get(k) for k in changed}, after={k: new_json.get(k) for k in changed},
        )
    return await get_benefit_view(conn, benefit_id)


async def replace_benefit(
    conn: asyncpg.Connection,
    benefit_id: UUID,
    spec: BenefitSpec,
    actor: Actor,
    *,
    expected_version: int | None = None,
) -> BenefitView:
    """A new version with this definition (PUT); the status carries over."""
    _raise(spec_problems(spec))
    return await _new_version(
        conn, benefit_id, actor, action="benefit.update", spec=spec, note="replaced", expected_version=expected_version
    )


async def patch_benefit(
    conn: asyncpg.Connection,
    benefit_id: UUID,
    raw: bytes | str | dict[str, Any],
    actor: Actor,
    *,
    expected_version: int | None = None,
) -> BenefitView:
    """A new version with the given top-level fields replaced (JSON merge of one level)."""
    try:
        patch = msgspec.json.decode(raw) if not isinstance(raw, dict) else raw
    except msgspec.DecodeError:
        raise MalformedJson("The request body is not valid JSON") from None
    except RecursionError:
        _raise([RuleProblem("$.rule", f"rule nests deeper than {MAX_DEPTH} levels")])
    if not isinstance(patch, dict):
        raise InvalidBenefit([RuleProblem("$", "a patch is a JSON object of the fields to change")])
    current = await get_benefit(conn, benefit_id)
    if current is None:
        raise BenefitNotFound(f"no benefit {benefit_id}")
    merged = {**msgspec.to_builtins(current.spec()), **patch}
    spec = decode_spec(merged)
    return await _new_version(
        conn,
        benefit_id,
        actor,
        action="benefit.update",
        spec=spec,
        note="patched: " + ", ".join(sorted(patch)),
        expected_version=expected_version,
    )


async def change_status(
    conn: asyncpg.Connection, benefit_id: UUID, change: StatusChange, actor: Actor
) -> BenefitView:
    """A new version with another status (draft → active → paused ⇄ active → retired)."""
    return await _new_version(
        conn, benefit_id, actor, action=f"benefit.status.{change.status}", status=change.status, note=change.note
    )


async def _link_venues(conn: asyncpg.Connection, benefit_id: UUID, venue_ids: list[UUID]) -> None:
    try:
        async with conn.transaction():
            await db.insert_venue_links(conn, benefit_id, sorted(set(venue_ids)))
    except asyncpg.ForeignKeyViolationError:
        raise InvalidBenefit([RuleProblem("$.venue_ids", "names a venue that does not exist")]) from None


async def create_benefit_json(conn: asyncpg.Connection, raw: bytes, actor: Actor) -> BenefitView:
    """`create_benefit` from a request body (422 naming the bad node's path)."""
    return await create_benefit(conn, decode_draft(raw), actor)


async def replace_benefit_json(
    conn: asyncpg.Connection, benefit_id: UUID, raw: bytes, actor: Actor, *, expected_version: int | None = None
) -> BenefitView:
    """`replace_benefit` from a request body (PUT: the whole definition)."""
    return await replace_benefit(conn, benefit_id, decode_spec(raw), actor, expected_version=expected_version)


async def get_version_or_404(conn: asyncpg.Connection, benefit_id: UUID, version: int) -> BenefitVersion:
    found = await get_version(conn, benefit_id, version)
    if found is None:
        raise BenefitNotFound(f"no version {version} of benefit {benefit_id}")
    return found


async def set_benefit_venues(
    conn: asyncpg.Connection, benefit_id: UUID, venue_ids: list[UUID], actor: Actor
) -> BenefitView:
    """Where the benefit can be used: replaces the venue list (not a new version: the rule is unchanged)."""
    async with conn.transaction():
        pointer = await db.get_pointer(conn, benefit_id, for_update=True)
        if pointer is None:
            raise BenefitNotFound(f"no benefit {benefit_id}")
        await db.delete_venue_links(conn, benefit_id)
        if venue_ids:
            await _link_venues(conn, benefit_id, venue_ids)
        await _audit(conn, actor, "benefit.venues", benefit_id, venue_ids=[str(v) for v in sorted(set(venue_ids))])
    return await get_benefit_view(conn, benefit_id)
