"""Shapes of the electronic 优待证."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from foundation.structs import Input, Record

__all__ = ("CredentialCheck", "CredentialRequest", "IssuedCredential")


class CredentialRequest(Input):
    holder_jwk: dict[str, Any]
    """The public key the veteran's app holds (Ed25519 OKP or P-256 EC JWK); bound as `cnf.jwk`."""


class IssuedCredential(Record):
    credential: str
    """The SD-JWT VC, compact: `<issuer-JWT>~<disclosure>~...~` (no KB-JWT: the holder adds one per presentation)."""
    format: str
    vct: str
    expires_at: datetime
    status_list_uri: str
    status_idx: int
    disclosable: list[str]


class CredentialCheck(Record):
    """What an offline verifier concluded: `ok`, or `reason` (a stable slug) and `detail`."""

    ok: bool
    reason: str | None = None
    detail: str | None = None
    status: str | None = None
    claims: dict[str, Any] | None = None
