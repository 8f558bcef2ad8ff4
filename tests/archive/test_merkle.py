"""RFC 9162 hashing and proofs against the transparency-dev vectors and the RFC's 7-leaf example."""

from __future__ import annotations

import base64
import hashlib

import pytest

from archive.checkpoints import TreeBuilder
from archive.merkle import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    hash_leaf,
    hash_node,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle cmd/proofgen leaves and roots for sizes 1..8 (prefixes; the last in full).
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                       "606162636465666768696a6b6c6d6e6f")]
ROOT_PREFIXES = ["6e340b9c", "fac54203", "aeb6bcfe", "d37ee418", "4e3bbb1f", "76e67dad", "ddb89be4", "5dc9da79"]
ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
HASHES = [hash_leaf(leaf) for leaf in LEAVES]


def test_hash_vectors():
    assert EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert hash_leaf(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert hash_leaf(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert hash_node(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_roots_of_sizes_1_to_8_and_the_builder_agrees():
    builder = TreeBuilder()
    for n in range(1, 9):
        builder.append(HASHES[n - 1])
        assert root_hash(HASHES[:n]).hex().startswith(ROOT_PREFIXES[n - 1])
        assert builder.root() == root_hash(HASHES[:n])
    assert root_hash(HASHES).hex() == ROOT_8
    assert base64.b64encode(root_hash(HASHES)).decode() == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="
    assert TreeBuilder().root() == EMPTY_ROOT == root_hash([])


def _names() -> tuple[list[bytes], dict[bytes, str]]:
    """RFC 9162 §2.1.5's 7-leaf tree: leaves a..f (d0..d5) and j (d6); g..l the inner nodes."""
    d = HASHES[:7]
    a, b, c, dd, e, f, j = d
    g, h, i = hash_node(a, b), hash_node(c, dd), hash_node(e, f)
    k, l = hash_node(g, h), hash_node(i, j)
    return d, {a: "a", b: "b", c: "c", dd: "d", e: "e", f: "f", g: "g", h: "h", i: "i", j: "j", k: "k", l: "l"}


def test_the_rfc_structural_example():
    d, name = _names()
    named = lambda proof: [name[p] for p in proof]  # noqa: E731
    assert named(inclusion_proof(0, d)) == ["b", "h", "l"]
    assert named(inclusion_proof(3, d)) == ["c", "g", "l"]
    assert named(inclusion_proof(4, d)) == ["f", "j", "k"]
    assert named(inclusion_proof(6, d)) == ["i", "k"]
    assert named(consistency_proof(3, d)) == ["c", "d", "g", "l"]
    assert named(consistency_proof(4, d)) == ["l"]
    assert named(consistency_proof(6, d)) == ["i", "j", "k"]


def test_every_proof_of_trees_up_to_33_verifies_and_a_wrong_one_does_not():
    leaves = [hash_leaf(bytes([n])) for n in range(34)]
    for n in range(1, 34):
        root = root_hash(leaves[:n])
        for m in range(n):
            proof = inclusion_proof(m, leaves[:n])
            verify_inclusion(m, n, leaves[m], proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(m, n, leaves[(m + 1) % 33], proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(m, n, leaves[m], proof, root_hash(leaves[:n + 1]))
            with pytest.raises(ProofError):
                verify_inclusion(n, n, leaves[m], proof, root)   # index == size
            with pytest.raises(ProofError):  # trailing garbage
                verify_inclusion(m, n, leaves[m], [*proof, leaves[0]], root)
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves[:n])
            verify_consistency(m, n, root_hash(leaves[:m]), root, proof)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, root_hash(leaves[1:m + 1]), root, proof)
                with pytest.raises(ProofError):
                    verify_consistency(m, n, root_hash(leaves[:m]), root, [*proof, leaves[0]])


def test_the_probes_a_bare_algorithm_misses():
    """The two transparency-dev probes the reference says a bare RFC check accepts."""
    with pytest.raises(ProofError):
        verify_inclusion(0, 1, b"", [], hash_leaf(b""))           # a zero-length leaf hash
    with pytest.raises(ProofError):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])       # sizes 0/0
    with pytest.raises(ProofError):
        verify_consistency(2, 2, HASHES[0], HASHES[0], [HASHES[1]])  # equal sizes need an empty proof


def _note_key_id(alg: str, jwk: dict) -> bytes:
    from archive.checkpoints import signed_note

    line = signed_note("note", b"\x00" * 64, alg, jwk).splitlines()[-1]
    return base64.b64decode(line.rsplit(" ", 1)[1])[:4]


def test_the_signed_note_key_id_names_each_algorithm_and_sm2_is_not_labelled_ecdsa():
    from archive.checkpoints import ORIGIN

    x, y = base64.urlsafe_b64encode(b"\x11" * 32).rstrip(b"=").decode(), base64.urlsafe_b64encode(b"\x22" * 32).rstrip(b"=").decode()
    point = b"\x04" + b"\x11" * 32 + b"\x22" * 32
    ec_key = {"x": x, "y": y}

    def expected(kind: bytes, public: bytes) -> bytes:
        return hashlib.sha256(ORIGIN.encode() + b"\n" + kind + public).digest()[:4]

    assert _note_key_id("EdDSA", {"x": x}) == expected(b"\x01", b"\x11" * 32)
    assert _note_key_id("ES256", ec_key) == expected(b"\x02", point)
    assert _note_key_id("SM2", ec_key) == expected(b"\xffsm2-sm3", point)
    assert _note_key_id("SM2", ec_key) != _note_key_id("ES256", ec_key)
    assert _note_key_id("SM2", None) == b"\x00\x00\x00\x00"
