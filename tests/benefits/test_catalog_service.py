"""The catalog in PostgreSQL: versions are immutable, the pointer moves, every change is audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from benefits import catalog
from benefits.catalog import Actor, InvalidBenefit, InvalidRule, StatusChange
from tests.factories.world import make_merchant, make_venue

ADMIN = Actor("admin", "test-admin")


def draft(code: str = "T1", **fields) -> catalog.BenefitDraft:
    body = {
        "code": code,
        "name_zh": "残疾军人免费乘坐本市公交",
        "name_en": "Free city bus for disabled servicemen",
        "domain": "transit",
        "value": {"kind": "free"},
        "rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"},
        "status": "active",
        **fields,
    }
    return catalog.decode_draft(body)


async def test_create_then_read_by_id_and_code(conn):
    created = await catalog.create_benefit(conn, draft(caps=[{"period": "day", "max": 2}]), ADMIN)
    assert created.version == 1 and created.status == "active"
    version = await catalog.get_benefit(conn, created.benefit_id)
    assert version.code == "T1" and version.is_active
    assert version.caps[0].max == 2
    assert (await catalog.get_benefit_by_code(conn, "T1")).benefit_id == created.benefit_id
    assert await catalog.get_benefit(conn, uuid.uuid4()) is None
    assert await catalog.get_benefit_by_code(conn, "NOPE") is None


async def test_every_change_is_a_new_immutable_version(conn):
    created = await catalog.create_benefit(conn, draft(), ADMIN)
    patched = await catalog.patch_benefit(
        conn, created.benefit_id, {"rule": {"op": "disability_grade", "min": 1, "max": 6}}, ADMIN
    )
    assert patched.version == 2 and patched.status == "active"
    paused = await catalog.change_status(conn, created.benefit_id, StatusChange(status="paused"), ADMIN)
    assert paused.version == 3 and paused.status == "paused"
    assert (await catalog.get_benefit(conn, created.benefit_id)).version == 3
    first = await catalog.get_version(conn, created.benefit_id, 1)
    assert first.rule == catalog.parse_rule({"op": "has_category", "category": "DISABLED_SERVICEMAN"})
    with pytest.raises(asyncpg.PostgresError):
        await conn.execute("UPDATE benefit_versions SET status = 'retired' WHERE benefit_id = $1", created.benefit_id)
    actions = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["benefit.create", "benefit.update", "benefit.status.paused"]
    assert await catalog.list_active_benefits(conn) == []


async def test_status_transitions_and_immutable_code(conn):
    created = await catalog.create_benefit(conn, draft(status="draft"), ADMIN)
    with pytest.raises(catalog.StatusChangeRefused):
        await catalog.change_status(conn, created.benefit_id, StatusChange(status="paused"), ADMIN)
    await catalog.change_status(conn, created.benefit_id, StatusChange(status="retired"), ADMIN)
    with pytest.raises(catalog.StatusChangeRefused):
        await catalog.change_status(conn, created.benefit_id, StatusChange(status="active"), ADMIN)
    other = await catalog.create_benefit(conn, draft("T2"), ADMIN)
    with pytest.raises(InvalidBenefit) as caught:
        await catalog.patch_benefit(conn, other.benefit_id, {"code": "T9"}, ADMIN)
    assert caught.value.problems[0].path == "$.code"
    with pytest.raises(catalog.CodeTaken):
        await catalog.create_benefit(conn, draft("T2"), ADMIN)


async def test_a_malformed_rule_names_its_path_and_writes_nothing(conn):
    created = await catalog.create_benefit(conn, draft(), ADMIN)
    with pytest.raises(InvalidRule) as caught:
        await catalog.patch_benefit(
            conn,
            created.benefit_id,
            {"rule": {"op": "all", "all": [{"op": "always"}, {"op": "always"}, {"op": "disability_grade", "min": 0}]}},
            ADMIN,
        )
    assert caught.value.problems[0].path == "$.rule.all[2].min"
    with pytest.raises(InvalidBenefit) as caught:
        catalog.decode_draft({**msgspec.to_builtins(draft()), "caps": [{"period": "day", "max": 0}]})
    assert caught.value.problems[0].path == "$.caps[0].max"
    assert (await catalog.get_benefit(conn, created.benefit_id)).version == 1


async def test_venues_and_the_benefits_at_a_venue(conn):
    merchant = await make_merchant(conn)
    venue = (await make_venue(conn, merchant.id)).id
    other = (await make_venue(conn, merchant.id, name="西馆")).id
    t1 = await catalog.create_benefit(conn, draft("T1"), ADMIN, venue_ids=[venue])
    t2 = await catalog.create_benefit(conn, draft("T2", status="draft"), ADMIN, venue_ids=[venue])
    at_venue = await catalog.benefits_at_venue(conn, venue)
    assert [v.code for v in at_venue] == ["T1"]  # drafts are not usable
    view = await catalog.set_benefit_venues(conn, t2.benefit_id, [venue, other], ADMIN)
    assert venue in view.venue_ids and len(view.venue_ids) == 2
    assert t1.venue_ids == [venue]


async def test_pages_of_benefits(conn):
    for i in range(5):
        await catalog.create_benefit(conn, draft(f"C{i}"), ADMIN)
    first = await catalog.list_benefits_page(conn, limit=2)
    second = await catalog.list_benefits_page(conn, limit=2, cursor=first.next_cursor)
    third = await catalog.list_benefits_page(conn, limit=2, cursor=second.next_cursor)
    codes = [b.code for page in (first, second, third) for b in page.items]
    assert sorted(codes) == [f"C{i}" for i in range(5)] and third.next_cursor is None


def test_remaining_quota_counts_the_current_buckets():
    version = draft(caps=[{"period": "day", "max": 1}, {"period": "month", "max": 4}])
    at = datetime(2026, 11, 27, 2, tzinfo=UTC)
    left = catalog.remaining_quota(version, {"d:2026-11-27": 1, "m:2026-11": 2, "d:2026-11-26": 1}, at)
    assert [(q.period_key, q.remaining) for q in left] == [("d:2026-11-27", 0), ("m:2026-11", 2)]
    assert left[0].resets_at == datetime(2026, 11, 27, 16, tzinfo=UTC)
