"""Shapes of the exchange: dead letters, the relay's figures, data-quality warnings."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from foundation.structs import Record

__all__ = ("DeadLetter", "ExchangeFigures", "QualityWarning")


class DeadLetter(Record):
    """A batch the receiver refused as invalid (a 4xx other than 408/429); admins re-send it."""

    id: UUID
    """The batch's `batch_id`, as the receiver saw it."""
    seq: int
    events: int
    attempts: int
    resent: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    dead_at: datetime | None


class ExchangeFigures(Record):
    lag_seconds: float
    """Age of the oldest event not yet accepted by the sink (0 when none waits)."""
    backlog: int
    """Events not yet accepted: not yet in a batch, or in a pending or dead batch."""
    delivered: int
    retried: int
    dead_lettered: int
    relay_active: bool
    epoch: int


class QualityWarning(Record):
    """One data-quality condition that holds now (第二十条): cleared when it stops holding."""

    code: str
    severity: str
    """`warning` or `critical`."""
    district: str | None
    """The district it concerns; None for city-wide conditions (a roster row without district)."""
    count: int
    sample_ids: list[str]
    """At most 5 masked ids: masked ID numbers for people, object ids for venues, benefits, devices."""
    message_zh: str
    first_seen: datetime
    last_seen: datetime
