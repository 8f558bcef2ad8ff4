"""Redemption: the scan decision, the append-only ledger, reversals."""

from benefits.redemption.reasons import MESSAGES, REASONS
from benefits.redemption.service import reverse, scan
from benefits.redemption.types import ReversalRequest, ReversalResult, ScanDecision, ScanRequest

__all__ = ("MESSAGES", "REASONS", "ReversalRequest", "ReversalResult", "ScanDecision", "ScanRequest", "reverse", "scan")
