"""Redemption: the scan decision, the append-only ledger, reversals."""

from benefits.redemption.reasons import MESSAGES, REASONS
from benefits.redemption.service import IDEMPOTENCY_MIN_AGE, prune_idempotency_keys, reverse, scan
from benefits.redemption.types import ReversalRequest, ReversalResult, ScanDecision, ScanRequest

__all__ = (
    "IDEMPOTENCY_MIN_AGE",
    "MESSAGES",
    "REASONS",
    "ReversalRequest",
    "ReversalResult",
    "ScanDecision",
    "ScanRequest",
    "prune_idempotency_keys",
    "reverse",
    "scan",
)
