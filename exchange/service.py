"""The exchange's rules: building the relay from settings, dead letters, replay, pruning, figures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

import asyncpg
import msgspec

from exchange import db
from exchange.relay import PSEUDONYM_SECRET, Pseudonyms, Relay
from exchange.seal import KeyRingSigner
from exchange.sinks import FileSink, HttpSink, Sink
from exchange.types import DeadLetter, ExchangeFigures, QualityWarning
from foundation.audit import write_audit
from foundation.errors import Forbidden, NotFound
from foundation.paging import Page, decode_cursor, fetch_size, page_of
from foundation.settings import Settings
from identity import KeyRing, Principal, SecretStore

__all__ = (
    "DeadLetterNotFound",
    "ReplayPruned",
    "build_relay",
    "exchange_figures",
    "list_dead_letters",
    "list_quality_warnings",
    "make_sink",
    "prune_events",
    "quality_counts",
    "replay_from",
    "resend_dead_letter",
    "run_quality_checks",
)


class DeadLetterNotFound(NotFound):
    type = "dead-letter-not-found"
    title = "No dead-lettered batch with this id"


class ReplayPruned(NotFound):
    type = "replay-pruned"
    title = "That event is no longer kept (pruned) or never existed"


def make_sink(settings: Settings) -> Sink | None:
    """The configured sink: HTTP when CHONGJUN_EXCHANGE_URL is set, else the file sink when
    CHONGJUN_EXCHANGE_DIR is; None (events accumulate) otherwise."""
    if settings.exchange_url:
        return HttpSink(settings.exchange_url, timeout=settings.exchange_timeout_seconds)
    if settings.exchange_dir is not None:
        return FileSink(settings.exchange_dir)
    return None


def build_relay(settings: Settings, pool: asyncpg.Pool, keyring: KeyRing, *, sink: Sink | None = None) -> Relay | None:
    sink = sink or make_sink(settings)
    if sink is None:
        return None
    return Relay(
        pool, sink, KeyRingSigner(keyring), Pseudonyms(SecretStore.from_settings(settings).get(PSEUDONYM_SECRET)),
        batch_size=settings.exchange_batch_size, backoff_max=settings.exchange_backoff_max_seconds,
    )


def _require_reader(caller: Principal) -> None:
    if caller.kind != "admin" or caller.role not in ("city", "auditor"):
        raise Forbidden("The exchange's dead letters are city-wide: city admins and auditors")


async def list_dead_letters(conn: asyncpg.Connection, caller: Principal, *, limit: int, cursor: str | None) -> Page[DeadLetter]:
    """Dead-lettered batches, most recent first."""
    _require_reader(caller)
    rows = await db.list_dead(conn, before=decode_cursor(cursor), limit=fetch_size(limit))
    return page_of(rows, limit, lambda row: msgspec.convert(dict(row), DeadLetter), sort_key="dead_at")


async def resend_dead_letter(conn: asyncpg.Connection, caller: Principal, batch_id: UUID) -> DeadLetter:
    """Put a dead batch back in the queue: the relay sends the same bytes (same batch_id and event
    ids) next, before newer batches. City admins only; audited."""
    _require_reader(caller)
    if caller.role != "city":
        raise Forbidden("Auditors read the dead letters; only city admins re-send them")
    async with conn.transaction():
        row = await db.requeue_dead(conn, batch_id)
        if row is None:
            raise DeadLetterNotFound()
        await write_audit(
            conn, actor_kind=caller.kind, actor_id=str(caller.subject), action="exchange.resend",
            object_kind="exchange_batch", object_id=str(batch_id), detail={"seq": row["seq"], "events": row["events"]},
        )
    return msgspec.convert(dict(row), DeadLetter)


async def exchange_figures(conn: asyncpg.Connection) -> ExchangeFigures:
    row = await db.figures(conn)
    return ExchangeFigures(
        lag_seconds=max(0.0, row["lag_seconds"] or 0.0), backlog=row["backlog"], delivered=row["delivered"],
        retried=row["retried"], dead_lettered=row["dead"], relay_active=row["relay_active"], epoch=row["epoch"],
    )


async def replay_from(conn: asyncpg.Connection, sink: Sink, event_id: UUID) -> tuple[int, int]:
    """Send again, in order, every stored batch from the one holding `event_id` to the newest:
    the same bytes and seals, so the receiver dedupes what it has. (batches, events) sent.

    It does not touch the relay's state; a batch the sink does not accept stops the replay."""
    where = await db.outbox_position_of(conn, event_id)
    if where is None:
        raise ReplayPruned()
    sent_batches = sent_events = 0
    after = 0
    while True:
        batches = await db.batches_from(conn, tx=where["tx"], position=where["position"], after_seq=after, limit=50)
        if not batches:
            return sent_batches, sent_events
        for batch in batches:
            outcome = await sink.send(seq=batch["seq"], epoch=batch["epoch"], body=bytes(batch["body"]), seal=batch["seal"])
            if outcome.kind != "delivered":
                raise RuntimeError(f"replay stopped at batch {batch['seq']}: {outcome.error}")
            sent_batches += 1
            sent_events += batch["events"]
            after = batch["seq"]


async def prune_events(conn: asyncpg.Connection, *, older_than: timedelta, batch: int = 5000) -> tuple[int, int]:
    """Delivered events and batches older than `older_than`, in batches; never an undelivered one."""
    cutoff = datetime.now(timezone.utc) - older_than
    events = batches = 0
    while True:
        e, b = await db.prune_delivered(conn, older_than=cutoff, batch=batch)
        events, batches = events + e, batches + b
        if e < batch and b < batch:
            return events, batches


# --- the data-quality monitor (issue 13 §4) --------------------------------------------------------


async def run_quality_checks(
    conn: asyncpg.Connection, *, lag_warning_seconds: int, unless_ran_within: float | None = None
) -> list[QualityWarning] | None:
    """Run every check once and store what holds now (raised, refreshed or cleared). Returns the
    active warnings, or None when another worker is running the checks at this moment or (with
    `unless_ran_within`, the periodic monitor's) ran them less than that many seconds ago: the
    monitors of all workers together run them once per interval."""
    async with conn.transaction():
        if not await db.lock_quality(conn):
            return None
        if unless_ran_within is not None and await db.quality_ran_within(conn, unless_ran_within):
            return None
        await db.note_quality_run(conn)
        found = []
        for code, (severity, message, sql) in db.QUALITY_CHECKS.items():
            for district, count, samples in await db.quality_rows(conn, sql):
                found.append((code, district, severity, count, samples, message))
        figures = await exchange_figures(conn)
        if figures.backlog and figures.lag_seconds > lag_warning_seconds:
            severity = "critical" if figures.lag_seconds > 6 * lag_warning_seconds else "warning"
            found.append(("exchange.lag", "", severity, figures.backlog, [], f"数据汇聚延迟 {int(figures.lag_seconds)} 秒"))
        await db.save_warnings(conn, found)
        rows = await db.active_warnings(conn, district=None)
    return [_warning(row) for row in rows]


def _warning(row: asyncpg.Record) -> QualityWarning:
    return msgspec.convert(dict(row), QualityWarning)


async def list_quality_warnings(conn: asyncpg.Connection, caller: Principal) -> list[QualityWarning]:
    """The active warnings: city admins and auditors all, a district admin their district's only."""
    if caller.kind != "admin" or caller.role not in ("city", "district", "auditor"):
        raise Forbidden("Data-quality warnings are for admins")
    district = None
    if caller.role == "district":
        if not caller.district:
            raise Forbidden("A district admin without a district sees no warnings")
        district = caller.district
    return [_warning(row) for row in await db.active_warnings(conn, district=district)]


async def quality_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return await db.warning_counts(conn)
