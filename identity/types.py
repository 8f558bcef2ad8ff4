"""Shapes of the identity package: records are frozen, inputs forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Input, Record

__all__ = (
    "AccountRecord",
    "AdminAccountCreate",
    "AdminAccountUpdate",
    "CreatedAdminAccount",
    "PasswordChange",
    "CodeRequest",
    "IssuedCode",
    "LogoutRequest",
    "NewAccount",
    "Principal",
    "PrincipalKind",
    "RefreshRequest",
    "ScannedHolder",
    "SessionTokens",
    "StaffLogin",
    "VerifiedCode",
    "VerifiedScan",
)

PrincipalKind = Literal["veteran", "staff", "admin", "device"]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]


class Principal(Record):
    """Who is calling; set on `request.user` by `api/auth.py` (see docs/architecture.md).

    A `Record` like every answer shape: the base's options (frozen, nothing else) are the ones
    this struct always had, so building one per verified token costs what it did."""

    kind: PrincipalKind
    subject: UUID
    """person id, account id or device id"""
    role: str | None = None
    """admin: city | district | auditor; staff: merchant role"""
    district: str | None = None
    """district admins: their district"""
    merchant_id: UUID | None = None
    """staff and devices"""
    venue_id: UUID | None = None
    """devices"""
    secret_generation: int | None = None
    """devices: the generation of the secret the token was issued under; a roll refuses older ones"""
    session_id: UUID | None = None
    """veterans, staff and admins: the session (refresh family) the token belongs to, claim `sid`;
    logging out or revoking the session refuses its access tokens at once (identity.sessions)"""


class SessionTokens(Record):
    access_token: str
    refresh_token: str | None
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"


class RefreshRequest(Input):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class LogoutRequest(Input):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class StaffLogin(Input):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    totp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None


class NewAccount(Input):
    """What `create_account` needs; the merchants package creates staff with it."""

    kind: Literal["staff", "admin"]
    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._@-]{1,63}$")]
    password: Password
    role: str | None = None
    district: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None
    merchant_id: UUID | None = None
    with_totp: bool = False


class AccountRecord(Record):
    id: UUID
    kind: Literal["staff", "admin"]
    username: str
    role: str | None
    district: str | None
    merchant_id: UUID | None
    totp_enabled: bool
    disabled: bool
    created_at: datetime
    password_must_change: bool = False
    """set by an admin (a new account, a reset): the holder changes it before logging in"""
    duty: Literal["system", "security", "audit"] | None = None
    """admins: the one duty of 三员分立 their role carries"""



class PasswordChange(Input):
    """`POST /v1/auth/password`: the holder proves the current password (and TOTP) and sets a new one."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    new_password: Password
    totp: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None


class AdminAccountCreate(Input):
    """What the security administrator sends to create an admin account: the role names the duty
    (city, district: system; security: security; auditor: audit). The password is an initial one:
    its holder must change it before the first login."""

    username: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._@-]{1,63}$")]
    password: Password
    role: Literal["city", "district", "security", "auditor"]
    district: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None
    with_totp: bool = False


class AdminAccountUpdate(Input):
    """Disable or enable an admin account, move it within its duty (city <-> district), or reset
    its password (an initial one again: the holder must change it)."""

    disabled: bool | None = None
    role: Literal["city", "district", "security", "auditor"] | None = None
    district: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] | None = None
    password: Password | None = None


class CreatedAdminAccount(Record):
    account: AccountRecord
    totp_uri: str | None
    """otpauth:// URI with the TOTP secret: shown once, for the account holder's authenticator."""


class CodeRequest(Input):
    benefit_id: UUID | None = None


class IssuedCode(Record):
    """A fresh 崇军码 as the holder's app receives it."""

    code: str
    jti: str
    expires_at: datetime
    refresh_after: datetime
    png_url: str
    svg_url: str


class VerifiedCode(Record):
    """A 崇军码 whose signature and claims held; `person_id` is recovered from the pseudonym."""

    person_id: UUID
    jti: str
    kid: str
    issued_at: datetime
    expires_at: datetime
    benefit_id: UUID | None = None
    """the benefit the holder picked when showing the code, if any"""


class VerifiedScan(Record):
    """A scanned code whose signature and time held, before anyone looked the holder up.

    Exactly one of `person_id` (a 崇军码 names its holder) and `id_hmac` (a 随申码 names a
    citizen by the blind index of their ID number) is set.
    """

    jti: str
    expires_at: datetime
    source: Literal["cj_code", "suishen"]
    person_id: UUID | None = None
    id_hmac: bytes | None = None
    id_hmac_alt: bytes | None = None
    """a 随申码: the other crypto profile's index of the same number (identity.pii)"""
    benefit_id: UUID | None = None


class ScannedHolder(Record):
    """What the redemption pipeline learns from any scanned code (崇军码 or 随申码)."""

    person_id: UUID
    jti: str
    expires_at: datetime
    source: Literal["cj_code", "suishen"]
    benefit_id: UUID | None = None
    """a 崇军码 shown for one benefit carries it; None otherwise"""
