"""SQL of the exchange: the relay's lease, batch formation over the outbox, delivery state, dead
letters, the figures for /metrics, pruning, and the data-quality checks' reads."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

__all__ = (
    "QUALITY_CHECKS",
    "acquire_lease",
    "active_warnings",
    "batch_status",
    "batches_from",
    "count_undelivered",
    "figures",
    "form_batch_rows",
    "insert_batch",
    "list_dead",
    "mark_dead",
    "mark_delivered",
    "mark_retried",
    "next_pending",
    "outbox_position_of",
    "lock_quality",
    "note_quality_run",
    "prune_delivered",
    "quality_ran_within",
    "quality_rows",
    "read_cursor",
    "release_lease",
    "requeue_dead",
    "save_warnings",
    "stream_seqs",
    "warning_counts",
)

LEASE = "exchange"


async def acquire_lease(conn: asyncpg.Connection, *, holder: str, ttl_seconds: float) -> int | None:
    """Take or renew the one relay lease; its epoch (the fencing token) when held, else None.

    A holder renews its own live lease at the same epoch; anyone takes an expired one with the
    epoch + 1, so every write of an older holder is refused from then on."""
    return await conn.fetchval(
        """
        UPDATE exchange_lease SET
            epoch = CASE WHEN holder = $1 AND expires_at >= clock_timestamp() THEN epoch ELSE epoch + 1 END,
            holder = $1,
            expires_at = clock_timestamp() + make_interval(secs => $2)
        WHERE name = $3 AND (holder = $1 AND expires_at >= clock_timestamp() OR expires_at < clock_timestamp())
        RETURNING epoch
        """,
        holder, ttl_seconds, LEASE,
    )


async def release_lease(conn: asyncpg.Connection, *, holder: str, epoch: int) -> None:
    await conn.execute(
        "UPDATE exchange_lease SET expires_at = '-infinity' WHERE name = $1 AND holder = $2 AND epoch = $3",
        LEASE, holder, epoch,
    )


async def read_cursor(conn: asyncpg.Connection) -> asyncpg.Record:
    return await conn.fetchrow(
        "SELECT cursor_tx::text AS cursor_tx, cursor_pos, last_batch, last_digest FROM exchange_lease WHERE name = $1",
        LEASE,
    )


async def form_batch_rows(conn: asyncpg.Connection, *, cursor_tx: str, cursor_pos: int, limit: int) -> list[asyncpg.Record]:
    """The next events after the cursor, in commit-safe order.

    Only rows of transactions below this snapshot's xmin: every one of those has committed or
    rolled back, so no row can later become visible behind the cursor (a position taken at
    insert time is not commit order). Run it before the transaction writes anything, so its
    own transaction id is not involved. `payload` is the JSON text, put into the batch as is.

    The ORDER BY names the table's columns: a bare `ORDER BY tx` means the output column `tx`,
    the *text* of the xid8, which sorts '10000' before '9999' (a batch cut there would move the
    cursor past events it never sent) and cannot use the (tx, position) key, so every batch
    sorted the whole backlog."""
    return await conn.fetch(
        """
        SELECT o.position, o.tx::text AS tx, o.id, o.stream, o.type, o.version, o.at, o.subject,
               o.payload::text AS payload
        FROM outbox o
        WHERE (o.tx, o.position) > ($1::text::xid8, $2::bigint)
          AND o.tx < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY o.tx, o.position  -- the columns: a bare `tx` is the output's text (see above)
        LIMIT $3
        """,
        cursor_tx, cursor_pos, limit,
    )


async def stream_seqs(conn: asyncpg.Connection, streams: list[str]) -> dict[str, int]:
    rows = await conn.fetch("SELECT stream, last_seq FROM exchange_streams WHERE stream = ANY($1::text[])", streams)
    return {row["stream"]: row["last_seq"] for row in rows}


async def insert_batch(
    conn: asyncpg.Connection,
    *,
    holder: str,
    epoch: int,
    old_cursor: tuple[str, int],
    new_cursor: tuple[str, int],
    seq: int,
    batch_id: UUID,
    first: tuple[str, int],
    events: int,
    first_at: datetime,
    body: bytes,
    seal: str,
    digest: bytes,
    stream_last: dict[str, int],
) -> bool:
    """Record a formed batch and move the cursor, fenced: only the lease holder at `epoch`, and
    only from the cursor it read (compare-and-set). False (and nothing written) otherwise."""
    moved = await conn.fetchval(
        """
        UPDATE exchange_lease SET cursor_tx = $6::text::xid8, cursor_pos = $7, last_batch = $8, last_digest = $9
        WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at >= clock_timestamp()
          AND cursor_tx = $4::text::xid8 AND cursor_pos = $5 AND last_batch = $8 - 1
        RETURNING 1
        """,
        LEASE, holder, epoch, old_cursor[0], old_cursor[1], new_cursor[0], new_cursor[1], seq, digest,
    )
    if not moved:
        return False
    await conn.execute(
        """
        INSERT INTO exchange_streams (stream, last_seq) SELECT * FROM unnest($1::text[], $2::bigint[])
        ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq
        """,
        list(stream_last), list(stream_last.values()),
    )
    await conn.execute(
        """
        INSERT INTO exchange_batches (seq, batch_id, epoch, first_tx, first_pos, last_tx, last_pos, events,
                                      first_at, body, seal)
        VALUES ($1, $2, $3, $4::text::xid8, $5, $6::text::xid8, $7, $8, $9, $10, $11)
        """,
        seq, batch_id, epoch, first[0], first[1], new_cursor[0], new_cursor[1], events, first_at, body, seal,
    )
    return True


_BATCH_COLUMNS = "seq, batch_id, epoch, events, body, seal, status, attempts, resent, first_at, created_at"


async def next_pending(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The oldest batch still to deliver (the relay sends them strictly in this order)."""
    return await conn.fetchrow(
        f"SELECT {_BATCH_COLUMNS} FROM exchange_batches WHERE status = 'pending' ORDER BY seq LIMIT 1"
    )


_FENCE = "EXISTS (SELECT 1 FROM exchange_lease WHERE name = 'exchange' AND holder = $2 AND epoch = $3)"


async def mark_delivered(conn: asyncpg.Connection, *, seq: int, holder: str, epoch: int, status: int) -> bool:
    return bool(await conn.fetchval(
        f"""
        WITH done AS (
            UPDATE exchange_batches SET status = 'delivered', delivered_at = now(), attempts = attempts + 1,
                last_status = $4, last_error = NULL
            WHERE seq = $1 AND status = 'pending' AND {_FENCE}
            RETURNING events
        )
        UPDATE exchange_lease SET delivered = delivered + (SELECT events FROM done)
        WHERE name = 'exchange' AND EXISTS (SELECT 1 FROM done) RETURNING 1
        """,
        seq, holder, epoch, status,
    ))


async def mark_dead(conn: asyncpg.Connection, *, seq: int, holder: str, epoch: int, status: int, error: str) -> bool:
    return bool(await conn.fetchval(
        f"""
        WITH done AS (
            UPDATE exchange_batches SET status = 'dead', dead_at = now(), attempts = attempts + 1,
                last_status = $4, last_error = $5
            WHERE seq = $1 AND status = 'pending' AND {_FENCE}
            RETURNING events
        )
        UPDATE exchange_lease SET dead = dead + (SELECT events FROM done)
        WHERE name = 'exchange' AND EXISTS (SELECT 1 FROM done) RETURNING 1
        """,
        seq, holder, epoch, status, error,
    ))


async def mark_retried(conn: asyncpg.Connection, *, seq: int, holder: str, epoch: int, status: int | None, error: str) -> None:
    await conn.execute(
        f"""
        WITH done AS (
            UPDATE exchange_batches SET attempts = attempts + 1, last_status = $4, last_error = $5
            WHERE seq = $1 AND status = 'pending' AND {_FENCE}
            RETURNING 1
        )
        UPDATE exchange_lease SET retried = retried + 1 WHERE name = 'exchange' AND EXISTS (SELECT 1 FROM done)
        """,
        seq, holder, epoch, status, error,
    )


async def list_dead(conn: asyncpg.Connection, *, before: tuple[datetime, UUID] | None, limit: int) -> list[asyncpg.Record]:
    """Dead-lettered batches, most recent first (no event bodies: ids and counts only)."""
    before_at, before_id = before or (None, None)
    return await conn.fetch(
        """
        SELECT batch_id AS id, seq, events, attempts, resent, last_status, last_error, created_at, dead_at
        FROM exchange_batches
        WHERE status = 'dead' AND ($1::timestamptz IS NULL OR (dead_at, batch_id) < ($1, $2::uuid))
        ORDER BY dead_at DESC, batch_id DESC LIMIT $3
        """,
        before_at, before_id, limit,
    )


async def requeue_dead(conn: asyncpg.Connection, batch_id: UUID) -> asyncpg.Record | None:
    """A dead batch back to pending (the same bytes, the same batch_id): None if it is not dead."""
    return await conn.fetchrow(
        """
        WITH back AS (
            UPDATE exchange_batches SET status = 'pending', resent = resent + 1, dead_at = NULL
            WHERE batch_id = $1 AND status = 'dead'
            RETURNING batch_id AS id, seq, events, attempts, resent, last_status, last_error, created_at, dead_at
        ), fix AS (
            UPDATE exchange_lease SET dead = dead - (SELECT events FROM back)
            WHERE name = 'exchange' AND EXISTS (SELECT 1 FROM back)
        )
        SELECT * FROM back
        """,
        batch_id,
    )


async def batch_status(conn: asyncpg.Connection, batch_id: UUID) -> str | None:
    return await conn.fetchval("SELECT status FROM exchange_batches WHERE batch_id = $1", batch_id)


async def outbox_position_of(conn: asyncpg.Connection, event_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT tx::text AS tx, position FROM outbox WHERE id = $1", event_id)


async def batches_from(conn: asyncpg.Connection, *, tx: str, position: int, after_seq: int, limit: int) -> list[asyncpg.Record]:
    """Formed batches whose range ends at or after (tx, position), in order (for replay)."""
    return await conn.fetch(
        f"""
        SELECT {_BATCH_COLUMNS} FROM exchange_batches
        WHERE (last_tx, last_pos) >= ($1::text::xid8, $2::bigint) AND seq > $3
        ORDER BY seq LIMIT $4
        """,
        tx, position, after_seq, limit,
    )


async def count_undelivered(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        """
        SELECT (SELECT count(*) FROM outbox o, exchange_lease l
                WHERE l.name = 'exchange' AND (o.tx, o.position) > (l.cursor_tx, l.cursor_pos))
             + (SELECT coalesce(sum(events), 0) FROM exchange_batches WHERE status <> 'delivered')
        """
    )


BACKLOG_COUNTED_UP_TO = 10_000
"""Events past the relay's cursor counted one by one up to this many; a longer backlog is
estimated from the event positions (see `figures`)."""


async def figures(conn: asyncpg.Connection, *, counted_up_to: int = BACKLOG_COUNTED_UP_TO) -> asyncpg.Record:
    """What /metrics shows: lag (s), backlog (events not yet accepted), and the running totals.

    Every worker asks every few seconds, so the cost must not grow with the backlog: counting
    229,000 waiting events took 101 ms of PostgreSQL CPU, a stall of every scan on a 2-core
    host each time (issue 16). The backlog is exact up to `counted_up_to` events past the
    cursor; beyond, it is the newest position taken minus the cursor's, which can be off by
    the events of transactions still open or rolled back (both far fewer than the cap)."""
    return await conn.fetchrow(
        """
        SELECT
            extract(epoch FROM clock_timestamp() - least(
                (SELECT o.at FROM outbox o WHERE (o.tx, o.position) > (l.cursor_tx, l.cursor_pos)
                 ORDER BY o.tx, o.position LIMIT 1),
                (SELECT min(first_at) FROM exchange_batches WHERE status = 'pending')
            ))::float8 AS lag_seconds,
            (SELECT CASE WHEN waiting.n <= $1 THEN waiting.n
                         ELSE greatest($1 + 1, (SELECT last_value FROM outbox_position_seq) - l.cursor_pos) END
             FROM (SELECT count(*) AS n FROM (
                 SELECT FROM outbox o WHERE (o.tx, o.position) > (l.cursor_tx, l.cursor_pos) LIMIT $1 + 1
             ) counted) waiting)
              + (SELECT coalesce(sum(events), 0) FROM exchange_batches WHERE status <> 'delivered') AS backlog,
            l.delivered, l.retried, l.dead,
            (l.expires_at >= clock_timestamp()) AS relay_active, l.epoch
        FROM exchange_lease l WHERE l.name = 'exchange'
        """,
        counted_up_to,
    )


async def prune_delivered(conn: asyncpg.Connection, *, older_than: datetime, batch: int) -> tuple[int, int]:
    """One batch of delivered events (and delivered batches) older than `older_than`.

    Only events below the oldest batch not yet delivered (pending or dead) and below the
    cursor: an undelivered event is never removed."""
    events = await conn.execute(
        """
        DELETE FROM outbox WHERE (tx, position) IN (
            SELECT o.tx, o.position FROM outbox o, exchange_lease l
            WHERE l.name = 'exchange' AND o.at < $1
              AND (o.tx, o.position) <= (l.cursor_tx, l.cursor_pos)
              AND NOT EXISTS (
                  SELECT 1 FROM exchange_batches b
                  WHERE b.status <> 'delivered' AND (o.tx, o.position) >= (b.first_tx, b.first_pos)
              )
            LIMIT $2
        )
        """,
        older_than, batch,
    )
    batches = await conn.execute(
        """
        DELETE FROM exchange_batches WHERE seq IN (
            SELECT seq FROM exchange_batches WHERE status = 'delivered' AND delivered_at < $1 LIMIT $2
        )
        """,
        older_than, batch,
    )
    return int(events.split()[-1]), int(batches.split()[-1])


# --- the data-quality monitor (issue 13 §4) --------------------------------------------------------
# Each check answers rows of (district or '', count, up to 5 masked sample ids). They read other
# packages' tables on purpose: the monitor watches the data as stored.

QUALITY_CHECKS: dict[str, tuple[str, str, str]] = {
    # code: (severity, message, SQL)
    "roster.missing_district": ("warning", "名册记录缺少所属区", """
        SELECT '' AS district, count(*) AS n, (array_agg(id_masked ORDER BY id))[1:5] AS samples
        FROM people WHERE district IS NULL HAVING count(*) > 0"""),
    "roster.missing_birth_date": ("warning", "名册记录缺少出生日期", """
        SELECT coalesce(district, '') AS district, count(*) AS n, (array_agg(id_masked ORDER BY id))[1:5]
        FROM people WHERE birth_date IS NULL GROUP BY 1"""),
    # card_status itself is NOT NULL (the import refuses a row without it); a row with no card
    # at all is the case an operator must look at.
    "roster.missing_card": ("warning", "名册记录没有优待证信息", """
        SELECT coalesce(district, '') AS district, count(*) AS n, (array_agg(id_masked ORDER BY id))[1:5]
        FROM people WHERE card_kind = 'NONE' GROUP BY 1"""),
    "card.inactive_redeemed": ("critical", "已暂停或注销的优待证仍被核销", """
        SELECT v.district, count(*) AS n, (array_agg(DISTINCT p.id_masked))[1:5]
        FROM redemptions r JOIN people p ON p.id = r.person_id JOIN venues v ON v.id = r.venue_id
        WHERE r.kind = 'redemption' AND r.at > now() - interval '7 days'
          AND p.card_status IN ('SUSPENDED', 'REVOKED') AND r.at > p.updated_at
          AND NOT EXISTS (SELECT 1 FROM redemptions x WHERE x.reverses = r.id)
        GROUP BY v.district"""),
    "venue.missing_location": ("warning", "场馆缺少经纬度", """
        SELECT district, count(*) AS n, (array_agg(id::text ORDER BY id))[1:5]
        FROM venues WHERE status = 'active' AND (latitude IS NULL OR longitude IS NULL) GROUP BY district"""),
    "venue.missing_opening_hours": ("warning", "场馆缺少开放时间", """
        SELECT district, count(*) AS n, (array_agg(id::text ORDER BY id))[1:5]
        FROM venues WHERE status = 'active' AND opening_hours = '[]'::jsonb GROUP BY district"""),
    "benefit.missing_legal_basis": ("warning", "在用优待项目缺少政策依据", """
        SELECT '' AS district, count(*) AS n, (array_agg(b.code ORDER BY b.code))[1:5]
        FROM benefits b JOIN benefit_versions bv ON bv.benefit_id = b.id AND bv.version = b.current_version
        WHERE b.status = 'active' AND coalesce(btrim(bv.spec->>'legal_basis'), '') = '' HAVING count(*) > 0"""),
    "benefit.without_venue": ("warning", "在用优待项目没有任何场馆", """
        SELECT '' AS district, count(*) AS n, (array_agg(b.code ORDER BY b.code))[1:5]
        FROM benefits b WHERE b.status = 'active'
          AND NOT EXISTS (SELECT 1 FROM venue_benefits vb JOIN venues v ON v.id = vb.venue_id
                          WHERE vb.benefit_id = b.id AND v.status = 'active')
        HAVING count(*) > 0"""),
    # A venue whose invalid-code rate over the last hour is far above its own last 7 days:
    # at least 20 scans in the hour, and the rate over 3x the baseline and 20 points above it.
    "venue.refusal_spike": ("critical", "场馆无效码拒绝率远高于自身基线", """
        WITH scans AS (
            SELECT venue_id, at, reason = 'invalid_code' AS bad FROM rejected_scans WHERE at > now() - interval '8 days'
            UNION ALL
            SELECT venue_id, at, false FROM redemptions WHERE kind = 'redemption' AND at > now() - interval '8 days'
        ), rates AS (
            SELECT venue_id,
                   count(*) FILTER (WHERE at > now() - interval '1 hour') AS recent,
                   count(*) FILTER (WHERE at > now() - interval '1 hour' AND bad) AS recent_bad,
                   count(*) FILTER (WHERE at <= now() - interval '1 hour') AS base,
                   count(*) FILTER (WHERE at <= now() - interval '1 hour' AND bad) AS base_bad
            FROM scans GROUP BY venue_id
        )
        SELECT v.district, count(*) AS n, (array_agg(v.id::text ORDER BY v.id))[1:5]
        FROM rates r JOIN venues v ON v.id = r.venue_id
        WHERE r.recent >= 20
          AND r.recent_bad::float8 / r.recent > greatest(
              3 * coalesce(r.base_bad::float8 / nullif(r.base, 0), 0),
              coalesce(r.base_bad::float8 / nullif(r.base, 0), 0) + 0.2)
        GROUP BY v.district"""),
    "device.two_venues": ("critical", "同一设备在两个场馆扫码", """
        WITH uses AS (
            SELECT device_id, venue_id FROM redemptions WHERE device_id IS NOT NULL AND at > now() - interval '1 day'
            UNION
            SELECT device_id, venue_id FROM rejected_scans WHERE device_id IS NOT NULL AND at > now() - interval '1 day'
        ), odd AS (SELECT device_id FROM uses GROUP BY device_id HAVING count(DISTINCT venue_id) > 1)
        SELECT '' AS district, count(*) AS n, (array_agg(device_id::text ORDER BY device_id))[1:5]
        FROM odd HAVING count(*) > 0"""),
}


async def quality_rows(conn: asyncpg.Connection, sql: str) -> list[tuple[str, int, list[str]]]:
    return [(row[0], row[1], list(row[2] or [])) for row in await conn.fetch(sql)]


async def lock_quality(conn: asyncpg.Connection) -> bool:
    """One monitor run at a time across workers (transaction-scoped: nothing outlives it)."""
    return await conn.fetchval("SELECT pg_try_advisory_xact_lock(7245113901313)")


async def quality_ran_within(conn: asyncpg.Connection, seconds: float) -> bool:
    """Whether the checks ran less than `seconds` ago (migration 0061)."""
    return bool(await conn.fetchval(
        "SELECT at > clock_timestamp() - make_interval(secs => $1) FROM quality_checked WHERE one", seconds
    ))


async def note_quality_run(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO quality_checked (one, at) VALUES (true, clock_timestamp()) "
        "ON CONFLICT (one) DO UPDATE SET at = excluded.at"
    )


async def save_warnings(conn: asyncpg.Connection, found: list[tuple[str, str, str, int, list[str], str]]) -> None:
    """Raise or refresh every (code, district) found now; clear every active one not found."""
    await conn.execute(
        """
        INSERT INTO quality_warnings (code, district, severity, count, sample_ids, message_zh)
        SELECT f.code, f.district, f.severity, f.count, string_to_array(f.samples, ' '), f.message
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])
            AS f(code, district, severity, count, samples, message)
        ON CONFLICT (code, district) DO UPDATE SET
            severity = excluded.severity, count = excluded.count, sample_ids = excluded.sample_ids,
            message_zh = excluded.message_zh, last_seen = now(),
            first_seen = CASE WHEN quality_warnings.cleared_at IS NULL THEN quality_warnings.first_seen ELSE now() END,
            cleared_at = NULL
        """,
        [f[0] for f in found], [f[1] for f in found], [f[2] for f in found], [f[3] for f in found],
        [" ".join(f[4]) for f in found], [f[5] for f in found],
    )
    await conn.execute(
        """
        UPDATE quality_warnings SET cleared_at = now()
        WHERE cleared_at IS NULL AND (code, district) NOT IN (SELECT * FROM unnest($1::text[], $2::text[]))
        """,
        [f[0] for f in found], [f[1] for f in found],
    )


async def active_warnings(conn: asyncpg.Connection, *, district: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT code, severity, nullif(district, '') AS district, count, sample_ids, message_zh, first_seen, last_seen
        FROM quality_warnings
        WHERE cleared_at IS NULL AND ($1::text IS NULL OR district = $1)
        ORDER BY CASE severity WHEN 'critical' THEN 0 ELSE 1 END, code, district
        """,
        district,
    )


async def warning_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT code, sum(count)::int AS n FROM quality_warnings WHERE cleared_at IS NULL GROUP BY code")
    return {row["code"]: row["n"] for row in rows}
