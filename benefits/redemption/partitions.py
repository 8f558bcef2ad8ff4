"""The ledger's month partitions (migration 0050; docs/ledger-partitions.md says why each table is
keyed as it is): made ahead, and old ones detached and exported for the archive.

- `ensure_partitions` creates the month partitions of `redemptions`, `rejected_scans` and
  `consumed_codes` from last month to `months` ahead, through the owner's SECURITY DEFINER
  function, so the service may run it: `serve` does at start and then daily, and so does
  `chongjun partitions ensure`. Where a month has none, its rows go to the DEFAULT partition, so a
  scan never fails for want of one; such a month stays in the DEFAULT partition (history is never
  moved) and is named in the answer.
- `detach_partitions` (the schema owner only) takes the months before a month boundary out of the
  ledger, once nothing can use them any more: every code of the month has expired and is past the
  offline upload window (a detached month's codes could otherwise be accepted again). PostgreSQL
  itself refuses while a rating or an offline record still references one of its visits.
- `export_partitions` writes each detached partition of a month as CSV (header, fixed row order)
  with its SHA-256, a `sha256sum -c` file and a manifest. Dropping an exported table is the
  operator's act (`DROP TABLE`, as the owner), once the archive is safe.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import msgspec

from benefits.catalog import SHANGHAI
from benefits.redemption import db
from benefits.redemption.errors import PartitionInUse
from benefits.redemption.types import EnsuredPartitions, ExportedPartition
from foundation.audit import write_audit

__all__ = (
    "PARTITIONS_AHEAD",
    "PARTITIONS_CHECK_SECONDS",
    "detach_partitions",
    "ensure_partitions",
    "export_partitions",
    "first_of_month",
    "latest_detachable",
    "list_partitions",
)

PARTITIONS_AHEAD = 3
"""Months made ahead of this one by default."""
PARTITIONS_CHECK_SECONDS = 24 * 3600
"""How often a worker of `serve` ensures them (and once at start)."""
CODE_LIFETIME = timedelta(hours=24, seconds=30)
"""The longest a scanned code can be valid (a city platform code, identity.city.platform), leeway included."""


def first_of_month(day: date, months: int = 0) -> date:
    """The first day of `day`'s month, moved by `months` (negative: back)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def latest_detachable(now: datetime, upload_window: timedelta) -> date:
    """The latest month boundary one may detach before: every code of a month before it expired
    more than the offline upload window (plus a code's longest life) ago, so none of them can
    be presented or uploaded validly any more."""
    return first_of_month((now - upload_window - CODE_LIFETIME).astimezone(SHANGHAI).date())


async def ensure_partitions(
    conn: asyncpg.Connection, *, months: int = PARTITIONS_AHEAD, today: date | None = None
) -> EnsuredPartitions:
    """Create the missing month partitions from last month to `months` ahead of this one."""
    if not 0 <= months <= 120:
        raise ValueError("months ahead: 0 to 120")
    today = today or datetime.now(SHANGHAI).date()
    names = await db.ensure_partitions(conn, first=first_of_month(today, -1), last=first_of_month(today, months))
    return EnsuredPartitions(
        created=[n for n in names if not n.startswith("in-default:")],
        in_default=[n.removeprefix("in-default:") for n in names if n.startswith("in-default:")],
    )


async def list_partitions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """(parent, partition, estimate) of every partition attached to the ledger's tables."""
    return await db.attached_partitions(conn)


async def detach_partitions(
    conn: asyncpg.Connection, *, before: date, upload_window: timedelta, now: datetime | None = None
) -> list[str]:
    """Detach the month partitions of the three tables before `before` (a month's first day), as
    the schema owner, in one transaction with its audit entry; the names detached."""
    if before != first_of_month(before):
        raise ValueError("--before names a month: its first day")
    latest = latest_detachable(now or datetime.now(timezone.utc), upload_window)
    if before > latest:
        raise PartitionInUse(
            f"months before {before:%Y-%m} may still be used (codes and offline uploads); "
            f"the latest you may detach before is {latest:%Y-%m}"
        )
    try:
        async with conn.transaction():
            detached = await db.detach_partitions(conn, before=before)
            if detached:
                await write_audit(
                    conn, actor_kind="system", actor_id="cli", action="ledger.partitions.detach", object_kind="ledger",
                    object_id=f"before:{before:%Y-%m}", detail={"partitions": detached},
                )
    except asyncpg.ForeignKeyViolationError:
        raise PartitionInUse(
            f"a month before {before:%Y-%m} still has visits a rating or an offline record refers to; nothing was detached"
        ) from None
    except asyncpg.LockNotAvailableError:
        raise PartitionInUse("the ledger is busy (a long query holds it); nothing was detached, try again") from None
    return detached


async def export_partitions(conn: asyncpg.Connection, *, month: date, out_dir: Path) -> list[ExportedPartition]:
    """Write the detached partitions of `month` to `out_dir` (as the owner: they are no longer
    the service's): `<partition>.csv` each, `ledger-YYYY-MM.sha256` and `ledger-YYYY-MM.json`."""
    suffix = f"y{month:%Y}m{month:%m}"
    found = await db.detached_partitions(conn, suffix=suffix)
    if not found:
        raise PartitionInUse(f"no detached partition of {month:%Y-%m}: detach it first (chongjun partitions detach)")
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for row in found:
            path = out_dir / f"{row['partition']}.csv"
            digest = hashlib.sha256()
            with path.open("wb") as handle:

                async def write(chunk: bytes) -> None:
                    digest.update(chunk)
                    handle.write(chunk)

                rows = await db.copy_partition(conn, table=row["table"], partition=row["partition"], write=write)
            exported.append(
                ExportedPartition(table=row["table"], partition=row["partition"], file=path.name, rows=rows, sha256=digest.hexdigest())
            )
    stem = f"ledger-{month:%Y-%m}"
    (out_dir / f"{stem}.sha256").write_text("".join(f"{e.sha256}  {e.file}\n" for e in exported), encoding="ascii")
    (out_dir / f"{stem}.json").write_bytes(
        msgspec.json.format(msgspec.json.encode({"month": f"{month:%Y-%m}", "partitions": exported}), indent=2) + b"\n"
    )
    await write_audit(
        conn, actor_kind="system", actor_id="cli", action="ledger.partitions.export", object_kind="ledger",
        object_id=f"month:{month:%Y-%m}", detail={"partitions": [{"partition": e.partition, "rows": e.rows, "sha256": e.sha256} for e in exported]},
    )
    return exported
