"""Shapes of the audit archive: entries (foundation.audit.AuditEntry), filters, checkpoints, proofs."""

from __future__ import annotations

from datetime import datetime

from foundation.structs import Record

__all__ = (
    "AuditFilter", "AuditScope", "Checkpoint", "CheckpointStatus", "ConsistencyProof", "Finding", "InclusionProof", "VerifyReport",
)


class AuditFilter(Record, kw_only=True):
    """What a reader asks for; every field narrows (None: any)."""

    actor_kind: str | None = None
    actor_id: str | None = None
    action: str | None = None          # exact, or a prefix ending in "." ("device." = every device action)
    object_kind: str | None = None
    object_id: str | None = None
    district: str | None = None
    at_from: datetime | None = None
    at_to: datetime | None = None      # exclusive


class AuditScope(Record, kw_only=True):
    """What a caller may read at all, decided by `archive.scope_for` before any filter applies.

    `nothing`: the caller reads no entry. `district`: only entries of that district. `actions`:
    only entries whose action starts with one of these prefixes (None: every action).
    三员分立 (which duty reads whose actions): `admin_roles`, only entries whose actor is an admin
    of one of these roles; `not_admin_roles`, no entry whose actor is an admin of one of these.
    """

    nothing: bool = False
    district: str | None = None
    actions: tuple[str, ...] | None = None
    admin_roles: tuple[str, ...] | None = None
    not_admin_roles: tuple[str, ...] = ()


class Checkpoint(Record, kw_only=True):
    """A signed tree head: the C2SP tlog-checkpoint note `note` signed by key `kid` of the JWKS."""

    tree_size: int
    root_hash: str          # base64 (standard alphabet, as in the note)
    at: datetime
    kid: str
    alg: str
    signature: str          # base64url of the raw signature over the UTF-8 bytes of `note`
    note: str
    signed_note: str        # the note with its signature line (C2SP signed-note), for tlog tools


class InclusionProof(Record, kw_only=True):
    seq: int
    tree_size: int
    leaf_hash: str          # base64
    proof: list[str]        # base64 hashes, from the leaf's sibling up (RFC 9162 §2.1.3)
    checkpoint: Checkpoint


class ConsistencyProof(Record, kw_only=True):
    first: int
    second: int
    proof: list[str]        # base64 hashes (RFC 9162 §2.1.4)
    first_checkpoint: Checkpoint
    second_checkpoint: Checkpoint


class Finding(Record, kw_only=True):
    """The first thing `chongjun audit verify` found wrong."""

    kind: str               # edited | deleted | inserted | reordered | checkpoint-signature | checkpoint-root | checkpoint-size
    seq: int | None         # the first bad entry (or the checkpoint's tree size for checkpoint findings)
    message: str


class VerifyReport(Record, kw_only=True):
    ok: bool
    entries: int
    checkpoints: int
    finding: Finding | None = None


class CheckpointStatus(Record, kw_only=True):
    """The latest signed checkpoint as the service checks it now (the console's audit page).

    `signature_valid`: its note says its fields and its signature verifies under the key ring's
    public key of its `kid`. `consistent`: the RFC 9162 consistency proof from the previous
    checkpoint to it verifies against both signed roots (None without a previous one). `entries`:
    the committed entries now (those above the tree size are not signed yet). `problem`: what
    does not hold, in words.
    """

    entries: int
    checkpoint: Checkpoint | None = None
    signature_valid: bool | None = None
    previous: Checkpoint | None = None
    previous_signature_valid: bool | None = None
    consistent: bool | None = None
    problem: str | None = None
