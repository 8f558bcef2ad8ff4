"""Errors of the electronic 优待证; none carries an ID number or a key."""

from __future__ import annotations

from foundation.errors import Forbidden, Invalid, NotFound

__all__ = ("CredentialRefused", "InvalidHolderKey", "StatusListNotFound")


class InvalidHolderKey(Invalid):
    type = "invalid-holder-key"
    title = "The holder key is not a public Ed25519 or P-256 JWK"


class CredentialRefused(Forbidden):
    """The card is not active, so no new credential is issued (existing ones show it in the list)."""

    type = "credential-refused"
    title = "No credential for a card that is not active"


class StatusListNotFound(NotFound):
    type = "status-list-not-found"
    title = "No such status list"


class VerificationRefused(Exception):
    """The base of what a verifier of the specs answers for an input that does not verify
    (`sdjwt.SdJwtRefused`, `statuslist.StatusListRefused`, the names callers catch): `reason` is
    a stable slug, `detail` says what held. Not an HTTP error: the verification report carries it."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
