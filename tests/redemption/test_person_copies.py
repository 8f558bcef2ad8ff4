"""A person who comes back is decided from the worker's kept copy (issue 16, identity.PersonReads),
and the ledger statement checks, in the statement that records the scan, that the copy is still
exactly that person (`person_version`, migration 0059). A change to the card, the categories or
a family tie counts at the very next scan."""

from __future__ import annotations

import identity
from tests.factories.people import DISABLED_ID, VETERAN_ID
from tests.factories.world import UNCAPPED, build_world, suishen
from tests.redemption.test_scan_batches import _scan


def _index(settings, id_number: str) -> bytes:
    return identity.pii_vault(settings).index_of(id_number)


async def _reason(client, world, app, id_number: str, **body) -> str:
    reply = await _scan(client, world, suishen(app, id_number), **body)
    assert reply.status_code == 200, reply.text
    return reply.json()["reason"]


async def test_a_returning_person_is_not_read_again(app, client, conn):
    world = await build_world(client, app, benefit={**UNCAPPED, "code": "BACK"})
    reads = app.state.scan_batches.reads
    assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    read_so_far = reads.by_index.calls
    for _ in range(3):
        assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    assert reads.by_index.calls == read_so_far
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 4


async def test_a_card_suspended_after_the_copy_is_refused_at_once(app, client, conn, settings):
    world = await build_world(client, app, benefit={**UNCAPPED, "code": "SUSP"})
    reads = app.state.scan_batches.reads
    assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    assert len(reads.kept) == 1
    await conn.execute("UPDATE people SET card_status = 'SUSPENDED' WHERE id_hmac = $1", _index(settings, VETERAN_ID))
    assert await _reason(client, world, app, VETERAN_ID) == "card_suspended"
    assert len(reads.kept) == 0  # a suspended card is never kept: the next refusal is read afresh too
    assert await _reason(client, world, app, VETERAN_ID) == "card_suspended"
    await conn.execute("UPDATE people SET card_status = 'ACTIVE' WHERE id_hmac = $1", _index(settings, VETERAN_ID))
    assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 2
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans WHERE reason = 'card_suspended'") == 2


async def test_a_category_taken_away_after_the_copy_counts_at_once(app, client, conn, settings):
    only_disabled = {**UNCAPPED, "code": "ONLYD", "rule": {"op": "has_category", "category": "DISABLED_SERVICEMAN"}}
    world = await build_world(client, app, benefit=only_disabled)
    assert await _reason(client, world, app, DISABLED_ID) == "accepted"
    await conn.execute("UPDATE people SET categories = '{VETERAN}' WHERE id_hmac = $1", _index(settings, DISABLED_ID))
    assert await _reason(client, world, app, DISABLED_ID) == "not_eligible"
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 1


async def test_a_stale_copy_is_refused_by_the_ledger_and_decided_again_from_a_fresh_read(app, client, conn, settings):
    """The ledger statement says `stale_person` and writes nothing; the scan reads the person
    afresh, is accepted once, and the fresh copy is kept."""
    world = await build_world(client, app, benefit={**UNCAPPED, "code": "STALE"})
    reads = app.state.scan_batches.reads
    assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    code = await identity.verify_scan_code(suishen(app, VETERAN_ID), keyring=app.state.keyring, providers=app.state.city)
    key = (code.id_hmac, code.id_hmac_alt)
    kept = reads.kept.get(key)
    assert kept is not None and kept.version is not None
    reads.kept.put(key, identity.ScannedPerson(kept.person, version="not-this-version"))
    read_so_far = reads.by_index.calls
    assert await _reason(client, world, app, VETERAN_ID) == "accepted"
    assert reads.by_index.calls == read_so_far + 1
    assert reads.kept.get(key).version == kept.version
    assert await conn.fetchval("SELECT count(*) FROM redemptions") == 2
    assert await conn.fetchval("SELECT count(*) FROM consumed_codes") == 2
    assert await conn.fetchval("SELECT count(*) FROM rejected_scans") == 0


async def test_the_person_version_follows_the_row_its_ties_and_their_members(app, client, conn, settings):
    """What the person read hands the rules: the row, the family ties and each tied member's
    categories. A change to any of them is another version; reading changes nothing."""
    await build_world(client, app)  # the roster
    veteran = await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", _index(settings, VETERAN_ID))
    member = await conn.fetchval("SELECT id FROM people WHERE id_hmac = $1", _index(settings, DISABLED_ID))
    version = "SELECT person_version($1)"
    first = await conn.fetchval(version, veteran)
    assert first and await conn.fetchval(version, veteran) == first
    tie = await conn.fetchval(
        "INSERT INTO person_relations (person_id, relation, member_status, member_person_id) VALUES ($1, 'CHILD', 'ACTIVE', $2) RETURNING id",
        veteran, member,
    )
    with_tie = await conn.fetchval(version, veteran)
    assert with_tie != first
    await conn.execute("UPDATE people SET categories = '{VETERAN}' WHERE id = $1", member)
    member_changed = await conn.fetchval(version, veteran)
    assert member_changed not in (first, with_tie)
    await conn.execute("UPDATE person_relations SET member_status = 'MARTYR' WHERE id = $1", tie)
    assert await conn.fetchval(version, veteran) not in (first, with_tie, member_changed)
    assert await conn.fetchval(version, member) != await conn.fetchval(version, veteran)
    assert await conn.fetchval(version, "00000000-0000-0000-0000-000000000000") is None
