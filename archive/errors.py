"""Errors of the audit archive."""

from __future__ import annotations

from foundation.errors import Conflict, Invalid, NotFound

__all__ = ("ArchiveEmpty", "ArchiveTampered", "AuditEntryNotFound", "CheckpointNotFound", "RetentionRefused")


class AuditEntryNotFound(NotFound):
    """An inclusion proof asked for an entry sequence the log does not hold."""

    type = "audit-entry-not-found"
    title = "No such audit entry"


class CheckpointNotFound(NotFound):
    """No checkpoint was signed at that tree size, or the entry is not in the one named."""

    type = "checkpoint-not-found"
    title = "No signed checkpoint of that tree size"


class ArchiveEmpty(Conflict):
    """A checkpoint was asked for before the first audit entry: there is no tree to sign."""

    type = "archive-empty"
    title = "The audit archive has no entries to sign yet"


class ArchiveTampered(Conflict):
    """The entries no longer hash to their recorded leaves or lead to the last checkpoint's root,
    so signing a new checkpoint would vouch for a rewritten history."""

    type = "archive-tampered"
    title = "The audit archive does not verify; no checkpoint was signed"


class RetentionRefused(Invalid):
    """A prune whose cut-off is younger than six months (网络安全法: logs kept no less than six months)."""

    type = "retention-refused"
    title = "Audit entries are kept at least six months"
