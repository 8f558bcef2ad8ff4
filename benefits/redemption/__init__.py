"""Redemption: the scan decision, the append-only ledger, reversals, and what staff see of the
ledger (`reports`: their redemptions, the daily report, the sealed monthly statement; `seal`)."""

from benefits.redemption.reasons import MESSAGES, REASONS
from benefits.redemption.seal import verify_sealed
from benefits.redemption.service import IDEMPOTENCY_MIN_AGE, prune_idempotency_keys, reverse, scan
from benefits.redemption.types import (
    BenefitLine,
    DailyReport,
    RedemptionEntry,
    RedemptionResult,
    ReversalRequest,
    ReversalResult,
    ScanDecision,
    ScanRequest,
    Seal,
    SealedStatement,
    Statement,
    VenueReport,
    VenueStatement,
)

__all__ = (
    "IDEMPOTENCY_MIN_AGE",
    "MESSAGES",
    "REASONS",
    "BenefitLine",
    "DailyReport",
    "RedemptionEntry",
    "RedemptionResult",
    "ReversalRequest",
    "ReversalResult",
    "ScanDecision",
    "ScanRequest",
    "Seal",
    "SealedStatement",
    "Statement",
    "VenueReport",
    "VenueStatement",
    "prune_idempotency_keys",
    "reverse",
    "scan",
    "verify_sealed",
)
