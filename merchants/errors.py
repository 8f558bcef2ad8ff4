"""Errors of the merchants package; `api/errors.py` maps each category to its HTTP status."""

from __future__ import annotations

from foundation.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound, Unauthenticated

__all__ = (
    "BadDeviceCredentials",
    "DeviceRevoked",
    "DuplicateCreditCode",
    "InvalidCreditCode",
    "InvalidDistrict",
    "InvalidOpeningHours",
    "InvalidPeriod",
    "MerchantNotFound",
    "NotActive",
    "NotYours",
    "SetupQrGone",
    "StaffNotFound",
    "VenueNotFound",
    "DeviceNotFound",
)


class MerchantNotFound(NotFound):
    type = "merchant-not-found"
    title = "Merchant not found"


class VenueNotFound(NotFound):
    type = "venue-not-found"
    title = "Venue not found"


class DeviceNotFound(NotFound):
    type = "device-not-found"
    title = "Device not found"


class StaffNotFound(NotFound):
    type = "staff-not-found"
    title = "Staff account not found"


class SetupQrGone(NotFound):
    type = "setup-qr-gone"
    title = "Setup code no longer available"


class InvalidCreditCode(Invalid):
    type = "invalid-credit-code"
    title = "Invalid 统一社会信用代码"


class InvalidDistrict(Invalid):
    type = "invalid-district"
    title = "Not a Shanghai district code"


class InvalidOpeningHours(Invalid):
    type = "invalid-opening-hours"
    title = "Invalid opening hours"


class InvalidPeriod(BadRequest):
    type = "invalid-period"
    title = "Invalid period"


class DuplicateCreditCode(Conflict):
    type = "duplicate-credit-code"
    title = "A merchant with this 统一社会信用代码 exists"


class NotActive(Conflict):
    type = "not-active"
    title = "Not active"


class MerchantInactive(Forbidden):
    """A staff login with the right password, for a merchant that is suspended or closed."""

    type = "merchant-inactive"
    title = "The merchant is not active"


class NotYours(Forbidden):
    """The caller may use this kind of route but not on this object's scope (district, merchant)."""

    type = "out-of-scope"
    title = "Outside your scope"


class BadDeviceCredentials(Unauthenticated):
    """One answer for unknown device, wrong secret and revoked device: nothing to tell apart."""

    type = "bad-device-credentials"
    title = "Device credentials refused"


class DeviceRevoked(Unauthenticated):
    type = "device-revoked"
    title = "Device revoked"
