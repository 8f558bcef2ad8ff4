"""Checkpoint notes (C2SP tlog-checkpoint / signed-note) and the incremental tree builder.

The signed text of a checkpoint is

    cjmf/audit/v1
    <tree size, decimal>
    <root hash, base64>
    time <unix seconds>

each line ending in "\\n". The signature is the key ring's (`identity.KeyRing.sign`) over those
UTF-8 bytes, by a key published in /.well-known/jwks.json under its `kid`. `signed_note` adds the
signed-note signature line (`— <origin> base64(key id || signature)`, U+2014) so tlog tools can
read it: key id = SHA-256(origin || 0x0A || type || public key)[:4], type 0x01 for Ed25519 and
0x02 for ECDSA P-256 (public key as the uncompressed point).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime, timezone

from foundation.encoding import b64url, unb64url
from archive.merkle import EMPTY_ROOT, hash_node
from archive.types import Checkpoint

__all__ = (
    "ORIGIN", "TreeBuilder", "b64", "b64url", "checkpoint_of", "note_text", "parse_note", "signed_note", "unb64",
    "unb64url", "unix_time",
)

ORIGIN = "cjmf/audit/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def note_text(tree_size: int, root: bytes, at: datetime) -> str:
    return f"{ORIGIN}\n{tree_size}\n{b64(root)}\ntime {int(at.timestamp())}\n"


def parse_note(note: str) -> tuple[int, bytes, int]:
    """(tree size, root, unix time) of a note text; ValueError if it is not one of ours."""
    lines = note.split("\n")
    if len(lines) != 5 or lines[0] != ORIGIN or lines[4] != "" or not lines[3].startswith("time "):
        raise ValueError("not a cjmf/audit/v1 checkpoint note")
    size, when = lines[1], lines[3][5:]
    if not size.isdigit() or (size != "0" and size.startswith("0")) or not when.isdigit():
        raise ValueError("bad number in the checkpoint note")
    root = unb64(lines[2])
    if len(root) != 32:
        raise ValueError("the root is not 32 bytes")
    return int(size), root, int(when)


_SIGNATURE_TYPES: dict[str, bytes] = {
    "EdDSA": b"\x01",
    "ES256": b"\x02",
    # C2SP signed-note keeps 0x01..0x04 for its own types and 0xff for the rest, identified by name:
    # SM2 with SM3 is not ECDSA, and a verifier must not take its key for a P-256 one.
    "SM2": b"\xffsm2-sm3",
}
"""The signed-note signature type of each algorithm, hashed into the 4-byte key id."""


def _key_id(jwk: Mapping[str, str] | None, alg: str) -> bytes:
    if jwk is None:
        return b"\x00\x00\x00\x00"
    kind = _SIGNATURE_TYPES[alg]
    public = unb64url(jwk["x"]) if alg == "EdDSA" else b"\x04" + unb64url(jwk["x"]) + unb64url(jwk["y"])
    return hashlib.sha256(ORIGIN.encode() + b"\n" + kind + public).digest()[:4]


def signed_note(note: str, signature: bytes, alg: str, jwk: Mapping[str, str] | None) -> str:
    return f"{note}\n\u2014 {ORIGIN} {b64(_key_id(jwk, alg) + signature)}\n"


def checkpoint_of(row: Mapping, jwk: Mapping[str, str] | None) -> Checkpoint:
    return Checkpoint(
        tree_size=row["tree_size"], root_hash=b64(bytes(row["root_hash"])), at=row["at"], kid=row["kid"], alg=row["alg"],
        signature=b64url(bytes(row["signature"])), note=row["note"],
        signed_note=signed_note(row["note"], bytes(row["signature"]), row["alg"], jwk),
    )


def unix_time(at: datetime) -> datetime:
    """`at` cut to whole seconds (the note's resolution), in UTC."""
    return datetime.fromtimestamp(int(at.timestamp()), timezone.utc)


class TreeBuilder:
    """Appends leaf hashes and gives the root of the tree so far at any size (a compact range)."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []   # (height, hash) of perfect subtrees, left to right
        self.size = 0

    def append(self, leaf: bytes) -> None:
        height, node = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            node = hash_node(left, node)
            height += 1
        self._stack.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = hash_node(left, node)
        return node
