"""Signature throughput per algorithm on one core: SM2 (OpenSSL via foundation.sm2), Ed25519, ES256.

Each case signs or verifies the same 300-byte message (about a 崇军码's signing input) `count`
times in a loop on this thread and reports operations per second and the mean cost, in this
thread's CPU time (`time.thread_time`, as `openssl speed` counts), so a machine shared with
other work gives the cost of the operation and not its wait for a core. No server, no database:
this is the cryptographic floor under a scan.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from foundation.sm2 import SM2PrivateKey

__all__ = ("run_signature_bench",)

MESSAGE = b"x" * 300


def _rate(operation: Callable[[], object], count: int) -> float:
    for _ in range(min(50, count)):
        operation()
    started = time.thread_time()
    for _ in range(count):
        operation()
    return count / max(time.thread_time() - started, 1e-9)


def run_signature_bench(count: int) -> dict[str, tuple[float, float]]:
    """{case: (sign ops/s, verify ops/s)}."""
    sm2 = SM2PrivateKey.generate()
    sm2_public, sm2_signature = sm2.public_key(), sm2.sign(MESSAGE)
    ed = Ed25519PrivateKey.generate()
    ed_public, ed_signature = ed.public_key(), ed.sign(MESSAGE)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_public = p256.public_key()
    p256_signature = p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert sm2_public.verify(sm2_signature, MESSAGE)
    return {
        "SM2 (SM3, default ID)": (
            _rate(lambda: sm2.sign(MESSAGE), count),
            _rate(lambda: sm2_public.verify(sm2_signature, MESSAGE), count),
        ),
        "Ed25519": (
            _rate(lambda: ed.sign(MESSAGE), count),
            _rate(lambda: ed_public.verify(ed_signature, MESSAGE), count),
        ),
        "ES256 (P-256)": (
            _rate(lambda: p256.sign(MESSAGE, ec.ECDSA(hashes.SHA256())), count),
            _rate(lambda: p256_public.verify(p256_signature, MESSAGE, ec.ECDSA(hashes.SHA256())), count),
        ),
    }
