"""The audit archive over HTTP: `/v1/admin/audit` (entries in scope, checkpoints, proofs).

Every admin role reads; who reads which entries is `archive.scope_for` (district admins their
district's). Cutting a checkpoint now is the city admins'; the service also cuts one regularly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo
from typing import Annotated

from litestar import Litestar, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

import archive
from api.deps import Conn, CurrentPrincipal, Keyring
from api.guards import AdminRoutes, requires_admin_role
from api.lifespan import in_background
from api.paging import District, Page, Paging
from archive import AuditFilter, Checkpoint, CheckpointStatus, ConsistencyProof, InclusionProof
from foundation.audit import AuditEntry

__all__ = ("AdminAuditController", "checkpoint_lifespan")

log = logging.getLogger("chongjun.audit")

SEQ_MAX = 2**62
_SHANGHAI = ZoneInfo("Asia/Shanghai")


def _day_start(day: date | None, *, after: bool = False) -> datetime | None:
    """Midnight in Shanghai that starts `day` (or, with `after`, the day after it)."""
    if day is None:
        return None
    if after:
        if day == date.max:
            return None
        day += timedelta(days=1)
    return datetime.combine(day, time.min, _SHANGHAI)
Seq = Annotated[int, QueryParameter(ge=0, le=SEQ_MAX, description="An entry's sequence number (its leaf index)")]
Size = Annotated[int, QueryParameter(ge=1, le=SEQ_MAX, description="The tree size of a signed checkpoint")]
Text = Annotated[str | None, QueryParameter(min_length=1, max_length=100)]


class AdminAuditController(AdminRoutes):
    path = "/v1/admin/audit"

    @get(
        "", operation_id="AdminListAudit",
        summary="Audit entries in the admin's scope, newest first (paged; district admins: their district)",
        description="`action` is exact, or a prefix ending in '.' (`device.`). `from` and `to` are days (Asia/Shanghai), both inclusive.",
    )
    async def list_entries(
        self, conn: Conn, principal: CurrentPrincipal, *,
        actor_kind: Text = None, actor_id: Text = None, action: Text = None, object_kind: Text = None,
        object_id: Text = None,
        district: District = None,
        day_from: Annotated[date | None, QueryParameter(name="from", description="First day (Asia/Shanghai)")] = None,
        day_to: Annotated[date | None, QueryParameter(name="to", description="Last day (Asia/Shanghai), inclusive")] = None,
        paging: Paging,
    ) -> Page[AuditEntry]:
        filters = AuditFilter(
            actor_kind=actor_kind, actor_id=actor_id, action=action, object_kind=object_kind, object_id=object_id,
            district=district, at_from=_day_start(day_from), at_to=_day_start(day_to, after=True),
        )
        return await archive.list_entries(conn, principal, filters, limit=paging.limit, cursor=paging.cursor)

    @get("/entries/{seq:int}", operation_id="AdminGetAuditEntry", summary="One audit entry (outside the scope: 404)")
    async def get_entry(self, seq: FromPath[Annotated[int, QueryParameter(ge=0, le=SEQ_MAX)]], conn: Conn, principal: CurrentPrincipal) -> AuditEntry:
        return await archive.get_entry(conn, principal, seq)

    @get("/checkpoints", operation_id="AdminListCheckpoints", summary="Signed checkpoints, newest first (paged)")
    async def list_checkpoints(self, conn: Conn, keyring: Keyring, paging: Paging) -> Page[Checkpoint]:
        return await archive.list_checkpoints(conn, keyring, limit=paging.limit, cursor=paging.cursor)

    @get("/checkpoints/latest", operation_id="AdminLatestCheckpoint", summary="The latest signed checkpoint")
    async def latest_checkpoint(self, conn: Conn, keyring: Keyring) -> Checkpoint:
        return await archive.get_checkpoint(conn, keyring)

    @get(
        "/status", operation_id="AdminAuditStatus",
        summary="The latest signed checkpoint checked now: its signature, and its consistency with the previous one",
        description="What the console's audit page shows. Checked against the recorded leaf hashes and the key ring's "
        "public keys; `chongjun audit verify` recomputes every entry from its content.",
    )
    async def status(self, conn: Conn, keyring: Keyring) -> CheckpointStatus:
        return await archive.checkpoint_status(conn, keyring)

    @post(
        "/checkpoints", operation_id="AdminCutCheckpoint", status_code=HTTP_201_CREATED,
        guards=[requires_admin_role("city")],
        summary="Sign a checkpoint of every committed entry now (the latest again if nothing was added)",
    )
    async def cut_checkpoint(self, conn: Conn, keyring: Keyring) -> Checkpoint:
        return await archive.cut_checkpoint(conn, keyring)

    @get(
        "/proofs/inclusion", operation_id="AdminAuditInclusionProof",
        summary="RFC 9162 inclusion proof of an entry in a signed checkpoint (default: the latest)",
    )
    async def inclusion(
        self, conn: Conn, principal: CurrentPrincipal, keyring: Keyring, seq: Seq,
        tree_size: Annotated[int | None, QueryParameter(ge=1, le=SEQ_MAX)] = None,
    ) -> InclusionProof:
        return await archive.inclusion_proof(conn, principal, keyring, seq, tree_size)

    @get(
        "/proofs/consistency", operation_id="AdminAuditConsistencyProof",
        summary="RFC 9162 consistency proof between two signed checkpoints",
    )
    async def consistency(self, conn: Conn, keyring: Keyring, first: Size, second: Size) -> ConsistencyProof:
        return await archive.consistency_proof(conn, keyring, first, second)


async def _cut_regularly(app: Litestar, every: int) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with app.state.pool.acquire() as conn, conn.transaction():
                await archive.cut_checkpoint(conn, app.state.keyring)
        except archive.ArchiveEmpty:
            pass
        except archive.ArchiveTampered as exc:
            log.error("audit archive does not verify; no checkpoint signed: %s", exc)
        except Exception as exc:  # keep serving; the next round tries again
            log.warning("audit checkpoint failed: %s", type(exc).__name__)


@asynccontextmanager
async def checkpoint_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Every worker tries to sign a checkpoint every `audit_checkpoint_seconds`; the advisory lock
    and "nothing new: the last one" make that one checkpoint per round at most."""
    every = app.state.settings.audit_checkpoint_seconds
    if every <= 0:
        yield
        return
    async with in_background(_cut_regularly(app, every)):
        yield
