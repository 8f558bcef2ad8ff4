"""Shapes of the trust list of identity issuers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from foundation.structs import Input, Record

__all__ = ("IssuerCreate", "IssuerStatusChange", "IssuerView", "TrustedIssuer")

IssuerStatus = Literal["active", "suspended", "retired"]


class IssuerCreate(Input):
    code: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}-[A-Z0-9]{2,16}$", examples=["JS-SUFU"])]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    province: Annotated[str, msgspec.Meta(pattern=r"^[1-9][0-9]0000$", description="GB/T 2260 province, e.g. 320000 江苏")]
    kind: Literal["jwks", "online"]
    code_prefix: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2,6}[0-9]?:$", examples=["SFM1:"])]
    jwks: dict[str, Any] | None = None
    """kind jwks: the issuer's public keys (a JWK Set; Ed25519 or P-256, each with kid and alg)"""
    verify_url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s]{1,500}$")] | None = None
    """kind online: the issuer's 验码 URL (the same reply contract as the 随申码 platform)"""


class IssuerStatusChange(Input):
    status: IssuerStatus


class IssuerView(Record):
    code: str
    name: str
    province: str
    kind: str
    code_prefix: str
    status: str
    revision: int
    jwks: dict[str, Any] | None
    verify_url: str | None
    updated_at: datetime


class TrustedIssuer(Record):
    """One entry of the in-process snapshot the code verifiers use."""

    code: str
    province: str
    kind: str
    code_prefix: str
    status: str
    jwks: dict[str, Any] | None
    verify_url: str | None
