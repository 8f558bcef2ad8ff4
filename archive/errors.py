"""Errors of the audit archive."""

from __future__ import annotations

from foundation.errors import Conflict, Invalid, NotFound

__all__ = ("ArchiveEmpty", "ArchiveTampered", "AuditEntryNotFound", "CheckpointNotFound", "RetentionRefused")


class AuditEntryNotFound(NotFound):
    type = "audit-entry-not-found"
    title = "No such audit entry"


class CheckpointNotFound(NotFound):
    type = "checkpoint-not-found"
    title = "No signed checkpoint of that tree size"


class ArchiveEmpty(Conflict):
    type = "archive-empty"
    title = "The audit archive has no entries to sign yet"


class ArchiveTampered(Conflict):
    type = "archive-tampered"
    title = "The audit archive does not verify; no checkpoint was signed"


class RetentionRefused(Invalid):
    """A prune whose cut-off is younger than six months (网络安全法: logs kept no less than six months)."""

    type = "retention-refused"
    title = "Audit entries are kept at least six months"
