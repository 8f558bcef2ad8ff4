"""Errors of the redemption engine (HTTP mapping lives in api/errors.py by category)."""

from __future__ import annotations

from foundation.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited

__all__ = (
    "AlreadyReversed",
    "DuplicateLocalId",
    "PartitionInUse",
    "IdempotencyKeyInFlight",
    "IdempotencyKeyReused",
    "MonthArchived",
    "RedemptionNotFound",
    "ReversalWindowClosed",
    "ScanRateLimited",
    "VenueNotAllowed",
)


class VenueNotAllowed(Forbidden):
    type = "venue-not-allowed"
    title = "This caller may not act for that venue"


class IdempotencyKeyReused(Invalid):
    type = "idempotency-key-reused"
    title = "Idempotency-Key was already used with another request body"


class IdempotencyKeyInFlight(Conflict):
    type = "idempotency-key-in-flight"
    title = "A request with this Idempotency-Key is still being processed"


class ScanRateLimited(RateLimited):
    type = "scan-rate-limited"
    title = "Too many scans from this device"


class RedemptionNotFound(NotFound):
    type = "redemption-not-found"
    title = "No such redemption"


class AlreadyReversed(Conflict):
    type = "already-reversed"
    title = "This redemption was already reversed"


class ReversalWindowClosed(Conflict):
    type = "reversal-window-closed"
    title = "The reversal window for this redemption has closed"


class DuplicateLocalId(Invalid):
    type = "duplicate-local-id"
    title = "Two items of one offline upload have the same local_id"


class PartitionInUse(Conflict):
    """A month of the ledger that is still (or may still be) in use: not yet past every code's
    use and the offline upload window, or still referenced (a rating, an offline record)."""

    type = "partition-in-use"
    title = "That month of the ledger is still in use"


class MonthArchived(Conflict):
    """The month's ledger partitions were detached for the archive: a statement made now would
    miss its rows, so none is made (those sealed before are in `sealed_statements`)."""

    type = "month-archived"
    title = "That month of the ledger is archived"
