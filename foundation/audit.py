"""The one audit writer: every package records what it changed through `write_audit`.

Call it on the connection (and so in the transaction) of the change itself, so an entry exists
exactly when the change committed. `detail` is JSON and must hold no personal data: counts, ids,
before → after of configuration, digests; never an ID number, a name, a free-text comment or a
secret.

Each entry is a leaf of the archive's RFC 9162 Merkle tree (`archive/`): its leaf index is `seq`,
gapless and in commit order (the writer takes the next number under the one row of `audit_head`,
which the transaction holds until it commits, so concurrent auditing transactions commit one
after another: call `write_audit` as the last statement of a transaction, and never hold a row
another auditing transaction waits for after it). The leaf's bytes are `leaf_bytes(entry)`:
canonical JSON (sorted keys, no whitespace, UTF-8) of the fields below, format version 1. A new
format is a new `LEAF_VERSION` and a new log, never a change to this one.

Every entry also leaves as an event of the exchange's stream `audit` (issue 13: "the audit
archive is a stream like the others"), in the entry's own statement: `audit.entry`, carrying the
leaf's seq and hash so the data center can hold it against our signed checkpoints. A person (a
veteran acting, or a person acted on) is only the event's subject, pseudonymised by the relay;
their internal id is never in the payload.

`request_id_var` is the request id of the HTTP request being served (set by api.logs), recorded
with every entry; outside a request it is "-" and the entry records None.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
from datetime import datetime, timezone
from typing import Any, Final
from uuid import UUID

import asyncpg
import msgspec

from foundation.outbox import EVENT_TYPES, OUTBOX_INSERT
from foundation.structs import Record

__all__ = ("LEAF_VERSION", "AuditEntry", "canonical_detail", "leaf_bytes", "leaf_hash", "request_id_var", "write_audit")

LEAF_VERSION: Final = 1

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class AuditEntry(Record, kw_only=True):
    """One entry of the archive, as stored and as the API answers it."""

    seq: int
    at: datetime
    actor_kind: str                  # admin | staff | device | veteran | system
    actor_id: str
    actor_role: str | None = None    # admin: city | district | auditor; staff: their merchant role
    actor_district: str | None = None
    action: str                      # e.g. benefit.update, device.revoke, auth.login_failed
    object_kind: str
    object_id: str
    district: str | None = None      # whose district the object is in: district admins read theirs
    request_id: str | None = None
    detail: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    # jsonb keeps numbers as numerics, so a float would not read back bit-identical: store its text.
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def canonical_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """`detail` as it will read back from jsonb: JSON types only (UUIDs, dates as strings; floats as text)."""
    return _plain(msgspec.json.decode(msgspec.json.encode(detail or {})))


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_bytes(entry: AuditEntry) -> bytes:
    """The canonical bytes of one entry (leaf format 1), hashed into the Merkle tree."""
    doc = {
        "v": LEAF_VERSION,
        "seq": entry.seq,
        "at": _utc(entry.at),
        "actor": {"kind": entry.actor_kind, "id": entry.actor_id, "role": entry.actor_role, "district": entry.actor_district},
        "action": entry.action,
        "object": {"kind": entry.object_kind, "id": entry.object_id},
        "district": entry.district,
        "request_id": entry.request_id,
        "detail": entry.detail,
    }
    return msgspec.json.encode(doc, order="sorted")


def leaf_hash(entry: AuditEntry) -> bytes:
    """RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || leaf bytes)."""
    return hashlib.sha256(b"\x00" + leaf_bytes(entry)).digest()


_NEXT = "SELECT seq, at FROM audit_next()"
_AUDIT_STREAM, _AUDIT_VERSION = EVENT_TYPES["audit.entry"]
# The entry and its outbox event in one statement: no extra round trip, and the event exists
# exactly when the entry does.
_INSERT = f"""
    WITH entry AS (
        INSERT INTO audit_log (seq, at, actor_kind, actor_id, actor_role, actor_district, action, object_kind,
                               object_id, district, request_id, detail, leaf_hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        RETURNING seq
    )
    {OUTBOX_INSERT}
    SELECT '{_AUDIT_STREAM}', 'audit.entry', {_AUDIT_VERSION}, $14, $15 FROM entry
"""


def _event(entry: AuditEntry, leaf: bytes) -> tuple[UUID | None, dict[str, Any]]:
    """The entry as the data center gets it: (subject, payload). The person, if any, is the
    subject (the object when it is a person, else a veteran actor) and no id of theirs stays in
    the payload; everything else is the entry as archived."""
    veteran = entry.actor_kind == "veteran"
    person = entry.object_kind == "person"
    subject = UUID(entry.object_id) if person else UUID(entry.actor_id) if veteran else None
    hide_object = person or (veteran and entry.object_id == entry.actor_id)  # a veteran's own account
    return subject, {
        "seq": entry.seq,
        "at": _utc(entry.at),
        "action": entry.action,
        "actor": {"kind": entry.actor_kind, "id": None if veteran else entry.actor_id,
                  "role": entry.actor_role, "district": entry.actor_district},
        "object": {"kind": entry.object_kind, "id": None if hide_object else entry.object_id},
        "district": entry.district,
        "detail": entry.detail,
        "leaf_hash": leaf.hex(),
    }



async def write_audit(
    conn: asyncpg.Connection,
    *,
    actor_kind: str,
    actor_id: str,
    action: str,
    object_kind: str,
    object_id: str,
    district: str | None = None,
    detail: dict[str, Any] | None = None,
    actor_role: str | None = None,
    actor_district: str | None = None,
    request_id: str | None = None,
) -> int:
    """Append one entry to `audit_log` (append-only: its triggers refuse UPDATE, DELETE and TRUNCATE,
    and the service's database role may not do either); returns its `seq`.

    Outside a transaction it opens one for its two statements; inside one it is a savepoint, so the
    entry commits or rolls back with the change it records.
    """
    rid = request_id if request_id is not None else request_id_var.get()
    async with conn.transaction():
        head = await conn.fetchrow(_NEXT)
        entry = AuditEntry(
            seq=head["seq"], at=head["at"], actor_kind=actor_kind, actor_id=str(actor_id),
            actor_role=actor_role, actor_district=actor_district, action=action,
            object_kind=object_kind, object_id=str(object_id), district=district,
            request_id=None if rid == "-" else rid, detail=canonical_detail(detail),
        )
        leaf = leaf_hash(entry)
        subject, payload = _event(entry, leaf)
        await conn.execute(
            _INSERT, entry.seq, entry.at, entry.actor_kind, entry.actor_id, entry.actor_role, entry.actor_district,
            entry.action, entry.object_kind, entry.object_id, entry.district, entry.request_id, entry.detail,
            leaf, subject, payload,
        )
    return entry.seq
