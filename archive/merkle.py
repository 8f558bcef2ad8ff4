"""RFC 9162 §2.1 Merkle tree hashing, inclusion and consistency proofs, and their verifiers.

Pure functions over lists of 32-byte leaf hashes (`leaf_hash = SHA-256(0x00 || leaf bytes)`,
`node = SHA-256(0x01 || left || right)`). Tested on the transparency-dev vectors
(tests/archive/test_merkle.py). The builders here are O(n) per call; fine for the archive's size
(see docs/architecture.md for when to persist subtree hashes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

__all__ = (
    "EMPTY_ROOT",
    "ProofError",
    "consistency_proof",
    "hash_leaf",
    "hash_node",
    "inclusion_proof",
    "root_from_inclusion",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
)

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof that does not hold (or is malformed)."""


def hash_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def hash_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes; the empty tree's root is SHA-256("")."""
    if not leaves:
        return EMPTY_ROOT
    # Bottom-up: pair neighbours; an odd last node is carried up unchanged. For RFC 9162's
    # left-balanced split this gives the same root as the recursive definition.
    level = list(leaves)
    while len(level) > 1:
        nxt = [hash_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) (RFC 9162 §2.1.3.1), from the leaf's sibling up."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ProofError(f"index {index} is outside a tree of size {n}")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < k:
            return [*path(m, lo, lo + k), root_hash(leaves[lo + k:hi])]
        return [*path(m - k, lo + k, hi), root_hash(leaves[lo:lo + k])]

    return path(index, 0, n)


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1) for 0 < m < n; empty when m == n."""
    n = len(leaves)
    if not 0 < old_size <= n:
        raise ProofError(f"no consistency proof from size {old_size} to {n}")
    if old_size == n:
        return []

    def sub(m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        size = hi - lo
        if m == size:
            return [] if whole else [root_hash(leaves[lo:hi])]
        k = _split(size)
        if m <= k:
            return [*sub(m, lo, lo + k, whole), root_hash(leaves[lo + k:hi])]
        return [*sub(m - k, lo + k, hi, False), root_hash(leaves[lo:lo + k])]

    return sub(old_size, 0, n, True)


def _check(h: bytes) -> None:
    if not isinstance(h, bytes) or len(h) != 32:
        raise ProofError("a hash is not 32 bytes")


def _walk(fn: int, sn: int, path: Sequence[bytes]) -> Iterator[tuple[bytes, bool]]:
    """The walk both proof verifiers make (RFC 9162 §2.1.3.2 and §2.1.4.2, from `fn`, `sn`): each
    hash of `path` with whether it is a left sibling; ProofError when a hash is not 32 bytes or
    the path is longer or shorter than the tree allows."""
    for p in path:
        _check(p)
        if sn == 0:
            raise ProofError("the proof is too long")
        left = bool(fn & 1) or fn == sn
        yield p, left
        if left:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof is too short")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root the proof leads to (RFC 9162 §2.1.3.2); ProofError if it cannot be a proof."""
    if size <= 0 or not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    _check(leaf)
    r = leaf
    for p, left in _walk(index, size - 1, proof):
        r = hash_node(p, r) if left else hash_node(r, p)
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ProofError unless `proof` shows leaf `index` is in the tree of `size` with `root`."""
    _check(root)
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("the inclusion proof leads to another root")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise ProofError unless `proof` shows the tree of `new_size` extends the one of `old_size`
    (RFC 9162 §2.1.4.2; m == n needs an empty proof and equal roots, m == 0 is refused)."""
    _check(old_root)
    _check(new_root)
    for p in proof:
        _check(p)
    if old_size <= 0 or old_size > new_size:
        raise ProofError(f"no consistency from size {old_size} to {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("the proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c, left in _walk(fn, sn, path[1:]):
        if left:
            fr, sr = hash_node(c, fr), hash_node(c, sr)
        else:
            sr = hash_node(sr, c)
    if fr != old_root:
        raise ProofError("the proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("the proof does not lead to the new root")
