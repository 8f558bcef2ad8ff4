"""Recompute the archive and name the first thing wrong: `chongjun audit verify`.

Works on entries in stored order (from the database, or an `audit export` file read offline), the
signed checkpoints and a JWKS. Checked, in order, for each entry at position i:
- its `seq` is i (a higher one: the entries in between were deleted; a lower one: an entry was
  inserted or duplicated);
- its leaf hash recomputed from its content equals the hash the writer recorded (none recorded at
  or above `archive_from`: inserted outside the writer; a hash that matches the content under a
  nearby seq: reordered; otherwise: edited).
Then each checkpoint: its note says its fields, its signature verifies under its `kid` in the JWKS,
its tree size is not beyond the entries (else entries at the end were deleted), and its root equals
the root recomputed from the entries' content at that size. A rewrite that also recomputed the
recorded hashes is caught here: the bad entry lies after the previous good checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from archive.checkpoints import TreeBuilder, parse_note, unb64, unb64url
from archive.types import Checkpoint, Finding, VerifyReport
from foundation.audit import AuditEntry, leaf_hash
from identity import verify_signature

__all__ = ("REORDER_WINDOW", "Verifier", "signature_problem")

REORDER_WINDOW = 64
"""How far away a moved entry is looked for, to tell "reordered" from "edited"."""


def signature_problem(cp: Checkpoint, keys: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why checkpoint `cp` does not hold: its fields differ from its note, its key is not among
    `keys` (by kid) or its signature does not verify; None when it holds."""
    try:
        size, root, when = parse_note(cp.note)
    except ValueError as exc:
        return f"checkpoint {cp.tree_size}: {exc}"
    if size != cp.tree_size or root != unb64(cp.root_hash) or when != int(cp.at.timestamp()):
        return f"checkpoint {cp.tree_size}: its fields differ from its note"
    key = keys.get(cp.kid)
    if key is None:
        return f"checkpoint {cp.tree_size}: key {cp.kid} is not in the JWKS"
    if not verify_signature(cp.alg, key, cp.note.encode(), unb64url(cp.signature)):
        return f"checkpoint {cp.tree_size}: the signature does not verify"
    return None


class Verifier:
    def __init__(self, *, archive_from: int, jwks: Mapping[str, Any]) -> None:
        self.archive_from = archive_from
        self.keys = {key["kid"]: key for key in jwks.get("keys", []) if "kid" in key}
        self.tree = TreeBuilder()
        self.roots: dict[int, bytes] = {}
        self.finding: Finding | None = None
        self._wanted: set[int] = set()

    def want_roots_at(self, sizes: Iterable[int]) -> None:
        self._wanted = set(sizes)

    def _fail(self, kind: str, seq: int | None, message: str) -> None:
        if self.finding is None:
            self.finding = Finding(kind=kind, seq=seq, message=message)

    def add_pruned(self, seq: int, leaf: bytes) -> None:
        """The next leaf of the pruned prefix: the entry left after its six months (audit_prune), its
        recorded leaf hash stayed, so the tree and every checkpoint over it still verify."""
        i = self.tree.size
        if self.finding is None and seq != i:
            self._fail("deleted" if seq > i else "inserted", i, f"pruned leaf {seq} found at position {i}")
        self.tree.append(leaf)
        if self.tree.size in self._wanted:
            self.roots[self.tree.size] = self.tree.root()

    def add(self, entry: AuditEntry, recorded: bytes | None) -> None:
        """The next entry in stored order, with the leaf hash the writer recorded (None: none)."""
        i = self.tree.size
        if self.finding is None:
            if entry.seq > i:
                self._fail("deleted", i, f"entry {i} is missing: entries {i}..{entry.seq - 1} were deleted")
            elif entry.seq < i:
                self._fail("inserted", entry.seq, f"entry {entry.seq} appears again at position {i}: inserted or duplicated")
        computed = leaf_hash(entry)
        if self.finding is None:
            if recorded is None:
                if entry.seq >= self.archive_from:
                    self._fail("inserted", entry.seq, f"entry {entry.seq} has no recorded leaf hash: written outside the audit writer")
            elif computed != recorded:
                moved = self._moved_from(entry, recorded)
                if moved is not None:
                    self._fail("reordered", entry.seq, f"entry {entry.seq} holds the entry recorded as {moved}: entries were reordered")
                else:
                    self._fail("edited", entry.seq, f"entry {entry.seq} does not match its recorded leaf hash: it was edited")
        self.tree.append(computed)
        if self.tree.size in self._wanted:
            self.roots[self.tree.size] = self.tree.root()

    def _moved_from(self, entry: AuditEntry, recorded: bytes) -> int | None:
        for delta in range(1, REORDER_WINDOW + 1):
            for seq in (entry.seq - delta, entry.seq + delta):
                if seq >= 0 and leaf_hash(msgspec.structs.replace(entry, seq=seq)) == recorded:
                    return seq
        return None

    def check_checkpoints(self, checkpoints: list[Checkpoint]) -> None:
        previous = 0
        for cp in sorted(checkpoints, key=lambda c: c.tree_size):
            problem = signature_problem(cp, self.keys)
            if problem is not None:
                self._fail("checkpoint-signature", cp.tree_size, problem)
                return
            root = unb64(cp.root_hash)
            if cp.tree_size > self.tree.size:
                self._fail(
                    "checkpoint-size", self.tree.size,
                    f"checkpoint {cp.tree_size} covers more entries than there are ({self.tree.size}): "
                    f"entries from {self.tree.size} on were deleted",
                )
                return
            if self.roots.get(cp.tree_size) != root:
                self._fail(
                    "checkpoint-root", previous,
                    f"checkpoint {cp.tree_size}: the entries' root differs from the signed one: an entry in "
                    f"{previous}..{cp.tree_size - 1} was changed (the first not covered by an earlier good checkpoint is {previous})",
                )
                return
            previous = cp.tree_size

    def report(self, checkpoints: int) -> VerifyReport:
        return VerifyReport(ok=self.finding is None, entries=self.tree.size, checkpoints=checkpoints, finding=self.finding)
