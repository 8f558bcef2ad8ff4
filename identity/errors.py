"""Errors of the identity package, each with a stable `type` slug."""

from __future__ import annotations

from foundation.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthenticated, Unavailable

__all__ = (
    "AccountExists",
    "CodeNotFound",
    "CodeStoreUnavailable",
    "ExpiredCode",
    "InvalidAccount",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "InvalidToken",
    "LoginThrottled",
    "NotAuthenticated",
    "PasswordChangeRequired",
    "PasswordReused",
    "TotpEnrollmentRequired",
    "TotpRequired",
    "WeakPassword",
    "WrongPrincipal",
)


class InvalidToken(Unauthenticated):
    """Any token or code that did not verify: forged, tampered, unknown key, wrong type, garbage.

    One class and one `type` for all of them, so a caller cannot tell which check failed (no
    forgery oracle); the reason goes to the server log only.
    """

    type = "invalid-token"
    title = "Invalid or expired credentials"

    def __init__(self, detail: str | None = None, **extensions) -> None:
        # The detail is always the generic one: callers pass the reason for logs via `reason`.
        self.reason = detail or "invalid"
        super().__init__(self.title, **extensions)


class InvalidCode(InvalidToken):
    """A scanned code (崇军码 or 随申码) that did not verify; externally the same as InvalidToken."""


class ExpiredCode(InvalidCode):
    """A genuine code past `exp` + leeway. Only raised after the signature held, so it is no oracle.

    The redemption engine turns it into the `expired` reason code; code that only catches
    InvalidCode still treats it as invalid (it is a subclass).
    """

    type = "expired-code"
    title = "The code has expired"


class InvalidRefreshToken(InvalidToken):
    """Unknown, expired, revoked or reused refresh token: one answer for all."""


class NotAuthenticated(Unauthenticated):
    """A protected route was called without a bearer token."""

    type = "unauthenticated"
    title = "Authentication required"


class WrongPrincipal(Forbidden):
    """A valid token of another kind (e.g. a staff token on a veteran route)."""

    type = "forbidden"
    title = "Not allowed for this caller"


class InvalidCredentials(Unauthenticated):
    """Unknown user, wrong password, wrong or missing TOTP, disabled account: one answer for all."""

    type = "invalid-credentials"
    title = "Invalid username or password"


class TotpRequired(Unauthenticated):
    """The password held, but the account uses TOTP and the login carried no code.

    Said only after the password verified (an unknown user or a wrong password stays
    InvalidCredentials), so it is no username oracle; the attempt still counts in the throttle.
    """

    type = "totp-required"
    title = "This account needs its one-time code (totp)"


class LoginThrottled(RateLimited):
    """Too many login attempts for the username or the client address; `retry_after` seconds."""


    type = "login-throttled"
    title = "Too many failed logins; try again later"


class AccountExists(Conflict):
    type = "account-exists"
    title = "An account with this username exists"


class InvalidAccount(Invalid):
    type = "invalid-account"
    title = "The account data is not valid"


class CodeNotFound(NotFound):
    """No live code with this jti for this holder (expired, never issued, or someone else's)."""

    type = "code-not-found"
    title = "No such code"


class CodeStoreUnavailable(Unavailable):
    """Redis, which keeps issued codes for their QR images, does not answer."""

    type = "code-store-unavailable"
    title = "Codes cannot be issued right now"


class PasswordChangeRequired(Forbidden):
    """The password held, but it was set by an admin (a new account, a reset): its holder must
    choose a new one (POST /v1/auth/password) before the account may log in."""

    type = "password-change-required"
    title = "Choose a new password before logging in"


class TotpEnrollmentRequired(Forbidden):
    """An admin without a TOTP secret, where TOTP is required for admins (production)."""

    type = "totp-enrollment-required"
    title = "Administrators log in with a TOTP code here; this account has none enrolled"


class WeakPassword(Invalid):
    type = "weak-password"
    title = "The password does not meet the password policy"


class PasswordReused(Invalid):
    type = "password-reused"
    title = "The password was one of this account's recent ones"
