"""The audit archive's rules: who reads which entries, cutting signed checkpoints, proofs, verify, export.

- **Scope** is decided in one place, `scope_for(caller)`, and follows 三员分立 (identity.duties):
  the audit administrator (auditor) reads every entry but the audit duty's own actions, so the
  system and security duties' among them; the security administrator reads the audit duty's
  actions only; system administrators read entries of everyone but the security and audit
  duties, a city admin all of them, a district admin only entries whose `district` is theirs (a
  district admin token without a district reads nothing); nobody else anything. `list_entries`
  applies the scope before the caller's filters, so a filter can only narrow it.
- **Reading is archived**: every list, entry or proof read writes an `audit.read` entry (who,
  what was asked, how many entries came back), so the audit duty's own work is an action the
  security duty reads.
- **Checkpoints** are cut by `cut_checkpoint`: under a transaction-scoped advisory lock it reads
  the committed tree size, recomputes every leaf from content, refuses to sign (ArchiveTampered)
  if any differs from its recorded hash or the tree does not extend the last checkpoint, and signs
  the note with the key ring. No new entry since the last one: the last one is answered again.
- **Proofs** are computed from the recorded leaf hashes and always end at a signed checkpoint, so
  a client checks them against a signed root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from archive import db
from archive.checkpoints import TreeBuilder, b64, checkpoint_of, note_text, unb64, unix_time
from archive.errors import ArchiveEmpty, ArchiveTampered, AuditEntryNotFound, CheckpointNotFound, RetentionRefused
from archive.merkle import ProofError, consistency_proof as _consistency, inclusion_proof as _inclusion, verify_consistency
from archive.types import AuditFilter, AuditScope, Checkpoint, CheckpointStatus, ConsistencyProof, InclusionProof, VerifyReport
from archive.verify import Verifier, signature_problem
from foundation.audit import AuditEntry, leaf_hash, write_audit
from foundation.paging import Page, decode_cursor, fetch_size, page_of
from identity import KeyRing, Principal, duty_of_role, roles_of_duty

__all__ = (
    "EXPORT_FORMAT",
    "checkpoint_status",
    "RETENTION_MONTHS",
    "consistency_proof",
    "cut_checkpoint",
    "entry_of",
    "export_archive",
    "get_checkpoint",
    "get_entry",
    "inclusion_proof",
    "list_checkpoints",
    "list_entries",
    "prune_archive",
    "retention_cutoff",
    "scope_for",
    "verify_database",
    "verify_export",
)

# Any fixed 64-bit number: the lock that serialises checkpoint cutters.
_CUT_LOCK = 7_245_113_901_228
EXPORT_FORMAT = "chongjun-audit-export/v1"


_AUDIT_ROLES = roles_of_duty("audit")
_OVERSIGHT_ROLES = roles_of_duty("security", "audit")


def scope_for(caller: Principal) -> AuditScope:
    """Which entries `caller` may read at all (see the module docstring)."""
    if caller.kind != "admin":
        return AuditScope(nothing=True)
    duty = duty_of_role(caller.role)
    if duty == "audit":
        return AuditScope(not_admin_roles=_AUDIT_ROLES)
    if duty == "security":
        return AuditScope(admin_roles=_AUDIT_ROLES)
    if caller.role == "city":
        return AuditScope(not_admin_roles=_OVERSIGHT_ROLES)
    if caller.role == "district" and caller.district:
        return AuditScope(district=caller.district, not_admin_roles=_OVERSIGHT_ROLES)
    return AuditScope(nothing=True)


async def _audit_read(conn: asyncpg.Connection, caller: Principal, what: str, **detail: Any) -> None:
    await write_audit(
        conn, actor_kind=caller.kind, actor_id=str(caller.subject), actor_role=caller.role,
        actor_district=caller.district, action="audit.read", object_kind="audit_log", object_id=what,
        detail={k: v for k, v in detail.items() if v is not None},
    )


def entry_of(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"], at=row["at"], actor_kind=row["actor_kind"], actor_id=row["actor_id"],
        actor_role=row["actor_role"], actor_district=row["actor_district"], action=row["action"],
        object_kind=row["object_kind"], object_id=row["object_id"], district=row["district"],
        request_id=row["request_id"], detail=row["detail"],
    )


def _visible(scope: AuditScope, row: Any) -> bool:
    if scope.nothing or (scope.district is not None and row["district"] != scope.district):
        return False
    by_admin = row["actor_kind"] == "admin"
    if scope.admin_roles is not None and not (by_admin and row["actor_role"] in scope.admin_roles):
        return False
    if by_admin and row["actor_role"] in scope.not_admin_roles:
        return False
    return scope.actions is None or any(row["action"].startswith(p) for p in scope.actions)


def _seq_key(seq: int) -> UUID:
    # foundation.paging's cursor names (timestamp, id); an entry's id for paging is its seq.
    return UUID(int=seq)


async def list_entries(
    conn: asyncpg.Connection, caller: Principal, filters: AuditFilter, *, limit: int, cursor: str | None
) -> Page[AuditEntry]:
    """The entries `caller` may read that match `filters`, newest first (paged)."""
    scope = scope_for(caller)
    position = decode_cursor(cursor)
    if scope.nothing or (scope.district is not None and filters.district not in (None, scope.district)):
        return Page(items=[])
    action, prefix = filters.action, None
    if action is not None and action.endswith("."):
        action, prefix = None, action
    rows = await db.entries_page(
        conn, district=scope.district or filters.district, actions=scope.actions,
        actor_kind=filters.actor_kind, actor_id=filters.actor_id, action=action, action_prefix=prefix,
        object_kind=filters.object_kind, object_id=filters.object_id, at_from=filters.at_from, at_to=filters.at_to,
        before_seq=position[1].int if position else None, limit=fetch_size(limit),
        admin_roles=scope.admin_roles, not_admin_roles=scope.not_admin_roles,
    )
    keyed = [{"at": r["at"], "id": _seq_key(r["seq"]), "row": r} for r in rows]
    page = page_of(keyed, limit, lambda k: entry_of(k["row"]), sort_key="at")
    await _audit_read(
        conn, caller, "entries", entries=len(page.items), cursor=cursor is not None,
        filters={k: v for k, v in msgspec.to_builtins(filters).items() if v is not None},
    )
    return page


async def get_entry(conn: asyncpg.Connection, caller: Principal, seq: int, *, archive_read: bool = True) -> AuditEntry:
    row = await db.entry(conn, seq)
    if row is None or not _visible(scope_for(caller), row):
        raise AuditEntryNotFound()
    if archive_read:
        await _audit_read(conn, caller, f"entry:{seq}")
    return entry_of(row)


async def _leaves(conn: asyncpg.Connection, size: int, *, recompute: bool) -> list[bytes]:
    """Leaf hashes 0..size-1; with `recompute`, from content, refusing any that differs from its record."""
    leaves: list[bytes] = []
    for row in await db.pruned_leaves(conn, below=size):
        if row["seq"] != len(leaves):
            raise ArchiveTampered(f"pruned leaf {len(leaves)} is missing or out of place")
        leaves.append(bytes(row["leaf_hash"]))
    async for row in db.iter_entries(conn, below=size):
        if row["seq"] != len(leaves):
            raise ArchiveTampered(f"entry {len(leaves)} is missing or out of place")
        recorded = bytes(row["leaf_hash"]) if row["leaf_hash"] is not None else None
        if recompute or recorded is None:
            computed = leaf_hash(entry_of(row))
            if recorded is not None and computed != recorded:
                raise ArchiveTampered(f"entry {row['seq']} does not match its recorded leaf hash")
            leaves.append(computed)
        else:
            leaves.append(recorded)
    if len(leaves) != size:
        raise ArchiveTampered(f"the archive holds {len(leaves)} entries below {size}")
    return leaves


def _jwk(keyring: KeyRing | None, kid: str) -> dict[str, str] | None:
    if keyring is None:
        return None
    record = keyring.get(kid)
    return dict(record.public_jwk) if record is not None else None


async def cut_checkpoint(conn: asyncpg.Connection, keyring: KeyRing, *, now: datetime | None = None) -> Checkpoint:
    """Sign a checkpoint of every committed entry (see the module docstring). Needs a transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _CUT_LOCK)
    size = (await db.head(conn))["next_seq"]
    last = await db.latest_checkpoint(conn)
    if last is not None and last["tree_size"] == size:
        return checkpoint_of(last, _jwk(keyring, last["kid"]))
    if size == 0:
        raise ArchiveEmpty()
    leaves = await _leaves(conn, size, recompute=True)
    tree = TreeBuilder()
    for i, leaf in enumerate(leaves):
        tree.append(leaf)
        if last is not None and tree.size == last["tree_size"] and tree.root() != bytes(last["root_hash"]):
            raise ArchiveTampered(f"the entries no longer lead to checkpoint {last['tree_size']}'s root")
    root = tree.root()
    at = unix_time(now or datetime.now(timezone.utc))
    note = note_text(size, root, at)
    key = keyring.active  # an identity.Signer: its kid and alg are those of the signature
    row = await db.insert_checkpoint(
        conn, tree_size=size, root_hash=root, at=at, note=note, kid=key.kid, alg=key.alg,
        signature=key.sign_bytes(note.encode()),
    )
    return checkpoint_of(row, _jwk(keyring, key.kid))


async def list_checkpoints(conn: asyncpg.Connection, keyring: KeyRing | None, *, limit: int, cursor: str | None) -> Page[Checkpoint]:
    position = decode_cursor(cursor)
    rows = await db.checkpoints_page(conn, below=position[1].int if position else None, limit=fetch_size(limit))
    keyed = [{"at": r["at"], "id": _seq_key(r["tree_size"]), "row": r} for r in rows]
    return page_of(keyed, limit, lambda k: checkpoint_of(k["row"], _jwk(keyring, k["row"]["kid"])), sort_key="at")


async def get_checkpoint(conn: asyncpg.Connection, keyring: KeyRing | None, tree_size: int | None = None) -> Checkpoint:
    """The checkpoint of `tree_size`, or the latest one."""
    row = await (db.latest_checkpoint(conn) if tree_size is None else db.checkpoint(conn, tree_size))
    if row is None:
        raise CheckpointNotFound()
    return checkpoint_of(row, _jwk(keyring, row["kid"]))


async def inclusion_proof(
    conn: asyncpg.Connection, caller: Principal, keyring: KeyRing | None, seq: int, tree_size: int | None = None
) -> InclusionProof:
    """That entry `seq` (one the caller may read) is in the signed tree of `tree_size` (default: latest)."""
    await get_entry(conn, caller, seq, archive_read=False)
    await _audit_read(conn, caller, f"inclusion:{seq}", tree_size=tree_size)
    cp = await get_checkpoint(conn, keyring, tree_size)
    if seq >= cp.tree_size:
        raise CheckpointNotFound(f"entry {seq} is not in the checkpoint of size {cp.tree_size}: ask a later one")
    leaves = await _leaves(conn, cp.tree_size, recompute=False)
    return InclusionProof(
        seq=seq, tree_size=cp.tree_size, leaf_hash=b64(leaves[seq]),
        proof=[b64(h) for h in _inclusion(seq, leaves)], checkpoint=cp,
    )


async def consistency_proof(conn: asyncpg.Connection, keyring: KeyRing | None, first: int, second: int) -> ConsistencyProof:
    """That the signed tree of `second` extends the signed tree of `first` (both checkpoints)."""
    older = await get_checkpoint(conn, keyring, first)
    newer = await get_checkpoint(conn, keyring, second)
    if first > second:
        older, newer = newer, older
    leaves = await _leaves(conn, newer.tree_size, recompute=False)
    return ConsistencyProof(
        first=older.tree_size, second=newer.tree_size,
        proof=[b64(h) for h in _consistency(older.tree_size, leaves)],
        first_checkpoint=older, second_checkpoint=newer,
    )


async def checkpoint_status(conn: asyncpg.Connection, keyring: KeyRing) -> CheckpointStatus:
    """The latest checkpoint, whether its signature holds, and whether it extends the previous one
    (archive.types.CheckpointStatus). Reads the recorded leaf hashes; `chongjun audit verify`
    recomputes them from content."""
    entries = (await db.head(conn))["next_seq"]
    rows = await db.checkpoints_page(conn, below=None, limit=2)
    if not rows:
        return CheckpointStatus(entries=entries)
    keys = {k["kid"]: k for k in keyring.jwks()["keys"]}
    latest = checkpoint_of(rows[0], _jwk(keyring, rows[0]["kid"]))
    latest_problem = signature_problem(latest, keys)
    if len(rows) == 1:
        return CheckpointStatus(entries=entries, checkpoint=latest, signature_valid=latest_problem is None, problem=latest_problem)
    previous = checkpoint_of(rows[1], _jwk(keyring, rows[1]["kid"]))
    previous_problem = signature_problem(previous, keys)
    problems = [latest_problem] if latest_problem else []
    proof = await consistency_proof(conn, keyring, previous.tree_size, latest.tree_size)
    try:
        verify_consistency(previous.tree_size, latest.tree_size, unb64(previous.root_hash), unb64(latest.root_hash),
                           [unb64(p) for p in proof.proof])
        consistent = True
    except ProofError as exc:
        consistent = False
        problems.append(f"checkpoint {latest.tree_size} does not extend checkpoint {previous.tree_size}: {exc}")
    if previous_problem:
        problems.append(previous_problem)
    return CheckpointStatus(
        entries=entries, checkpoint=latest, signature_valid=latest_problem is None, previous=previous,
        previous_signature_valid=previous_problem is None, consistent=consistent, problem="; ".join(problems) or None,
    )


def _checkpoint_rows(rows: list[Any], keyring: KeyRing | None) -> list[Checkpoint]:
    return [checkpoint_of(r, _jwk(keyring, r["kid"])) for r in rows]


async def verify_database(conn: asyncpg.Connection, jwks: dict[str, Any]) -> VerifyReport:
    """Recompute the whole archive from the database (archive.verify)."""
    head = await db.head(conn)
    checkpoints = _checkpoint_rows(await db.all_checkpoints(conn), None)
    verifier = Verifier(archive_from=head["archive_from"], jwks=jwks)
    verifier.want_roots_at(c.tree_size for c in checkpoints)
    for row in await db.pruned_leaves(conn):
        verifier.add_pruned(row["seq"], bytes(row["leaf_hash"]))
    async for row in db.iter_entries(conn):
        verifier.add(entry_of(row), bytes(row["leaf_hash"]) if row["leaf_hash"] is not None else None)
    verifier.check_checkpoints(checkpoints)
    return verifier.report(len(checkpoints))


_encoder = msgspec.json.Encoder(order="sorted")


async def export_archive(conn: asyncpg.Connection, jwks: dict[str, Any], write: Callable[[bytes], Any]) -> tuple[int, int]:
    """NDJSON: a header line, one line per entry (with its recorded leaf hash), one per checkpoint;
    it verifies offline with `verify_export`. Returns (entries, checkpoints). Run in one
    REPEATABLE READ transaction so the file is one consistent state."""
    head = await db.head(conn)
    write(_encoder.encode({"format": EXPORT_FORMAT, "archive_from": head["archive_from"], "jwks": jwks}) + b"\n")
    for row in await db.pruned_leaves(conn):
        write(_encoder.encode({"pruned_seq": row["seq"], "leaf_hash": b64(bytes(row["leaf_hash"]))}) + b"\n")
    entries = 0
    async for row in db.iter_entries(conn):
        leaf = bytes(row["leaf_hash"]) if row["leaf_hash"] is not None else None
        write(_encoder.encode({"entry": entry_of(row), "leaf_hash": b64(leaf) if leaf else None}) + b"\n")
        entries += 1
    checkpoints = _checkpoint_rows(await db.all_checkpoints(conn), None)
    for cp in checkpoints:
        write(_encoder.encode({"checkpoint": cp}) + b"\n")
    return entries, len(checkpoints)


class _Line(msgspec.Struct):
    format: str | None = None
    pruned_seq: int | None = None
    archive_from: int | None = None
    jwks: dict[str, Any] | None = None
    entry: AuditEntry | None = None
    leaf_hash: str | None = None
    checkpoint: Checkpoint | None = None


def verify_export(lines: Iterable[bytes], jwks: dict[str, Any] | None = None) -> VerifyReport:
    """Verify an `export_archive` file (an iterable of its lines) offline. `jwks`: the keys to trust
    (from /.well-known/jwks.json); None trusts the keys the file carries."""
    decoder = msgspec.json.Decoder(_Line)
    iterator = iter(lines)
    header = decoder.decode(next(iterator))
    if header.format != EXPORT_FORMAT:
        raise ValueError(f"not a {EXPORT_FORMAT} file")
    verifier = Verifier(archive_from=header.archive_from or 0, jwks=jwks if jwks is not None else (header.jwks or {}))
    pending: list[tuple[AuditEntry, bytes | None]] = []
    pruned: list[tuple[int, bytes]] = []
    checkpoints: list[Checkpoint] = []
    for raw in iterator:
        if not raw.strip():
            continue
        line = decoder.decode(raw)
        if line.pruned_seq is not None and line.leaf_hash:
            pruned.append((line.pruned_seq, unb64(line.leaf_hash)))
        elif line.entry is not None:
            pending.append((line.entry, base64_or_none(line.leaf_hash)))
        elif line.checkpoint is not None:
            checkpoints.append(line.checkpoint)
    verifier.want_roots_at(c.tree_size for c in checkpoints)
    for seq, leaf in pruned:
        verifier.add_pruned(seq, leaf)
    for entry, recorded in pending:
        verifier.add(entry, recorded)
    verifier.check_checkpoints(checkpoints)
    return verifier.report(len(checkpoints))


RETENTION_MONTHS = 6
"""网络安全法 第二十一条(三) (第二十三条 since the amendment in force 2026-01-01): network logs are kept
no less than six months. Migration 0051's `audit_prune` and delete trigger say the same in SQL."""


def retention_cutoff(now: datetime | None = None) -> datetime:
    """The youngest cut-off a prune may take: the same moment RETENTION_MONTHS calendar months ago
    (the day clamped to the month's last, as PostgreSQL's `interval '6 months'`)."""
    import calendar

    now = now or datetime.now(timezone.utc)
    month = now.month - RETENTION_MONTHS
    year = now.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return now.replace(year=year, month=month, day=min(now.day, calendar.monthrange(year, month)[1]))


async def prune_archive(conn: asyncpg.Connection, before: datetime, *, actor: str = "cli") -> int:
    """Remove the entries older than `before` that a signed checkpoint covers, keeping their leaf
    hashes (so everything still verifies); RetentionRefused for a `before` younger than six months.
    Needs the schema owner's connection (the service's role may not prune). The prune is archived."""
    if before > retention_cutoff():
        raise RetentionRefused(f"entries are kept at least {RETENTION_MONTHS} months: the cut-off may be {retention_cutoff():%Y-%m-%d} at the latest")
    async with conn.transaction():
        pruned = await db.prune(conn, before)
        await write_audit(
            conn, actor_kind="system", actor_id=actor, action="audit.prune", object_kind="archive", object_id="audit_log",
            detail={"before": before.isoformat(), "entries": pruned},
        )
    return pruned


def base64_or_none(text: str | None) -> bytes | None:
    return unb64(text) if text else None
