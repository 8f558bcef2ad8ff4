"""Shapes of the merchants package: inputs forbid unknown fields, records are frozen."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from foundation.structs import Input, Record

__all__ = (
    "Device",
    "DeviceCreate",
    "DeviceCredentials",
    "DeviceIdentity",
    "DeviceToken",
    "DeviceTokenRequest",
    "Domain",
    "Location",
    "Merchant",
    "MerchantCreate",
    "MerchantStatus",
    "MerchantUpdate",
    "OpeningPeriod",
    "ProvisionedDevice",
    "PublicVenue",
    "Venue",
    "VenueCreate",
    "VenueStatus",
    "VenueUpdate",
)

Domain = Literal["culture", "tourism", "transit", "other"]
MerchantStatus = Literal["active", "suspended", "closed"]
VenueStatus = Literal["active", "closed"]
DeviceStatus = Literal["active", "revoked"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
DistrictCode = Annotated[str, msgspec.Meta(pattern=r"^31[0-9]{4}$", examples=["310115"])]
CreditCode = Annotated[str, msgspec.Meta(min_length=18, max_length=18, examples=["91110000802100433B"])]
ContactName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9][0-9 -]{3,28}$", examples=["021-63725566"])]
Address = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Capacity = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, examples=["东门闸机 1"])]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$", examples=["09:00"])]
Weekday = Annotated[int, msgspec.Meta(ge=1, le=7)]


class Location(Input):
    """GCJ-02 coordinates (the datum of maps in China, and of the mini-program's map)."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lng: Annotated[float, msgspec.Meta(ge=-180, le=180)]


class OpeningPeriod(Input):
    """Open from `opens` to `closes` (Asia/Shanghai) on the ISO weekdays in `days` (1 = Monday)."""

    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)]
    opens: ClockTime
    closes: ClockTime


OpeningHours = Annotated[list[OpeningPeriod], msgspec.Meta(max_length=21)]


class MerchantCreate(Input):
    name: Name
    credit_code: CreditCode
    district: DistrictCode
    contact_name: ContactName
    contact_phone: Phone


class MerchantUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    contact_name: ContactName | msgspec.UnsetType = msgspec.UNSET
    contact_phone: Phone | msgspec.UnsetType = msgspec.UNSET
    district: DistrictCode | msgspec.UnsetType = msgspec.UNSET
    status: MerchantStatus | msgspec.UnsetType = msgspec.UNSET


class Merchant(Record):
    id: UUID
    name: str
    credit_code: str
    district: str
    contact_name: str
    contact_phone: str
    status: MerchantStatus
    created_at: datetime
    updated_at: datetime


class VenueCreate(Input, kw_only=True):
    merchant_id: UUID
    name_zh: Name
    name_en: Name | None = None
    district: DistrictCode
    address: Address
    location: Location | None = None
    domain: Domain
    opening_hours: OpeningHours = []
    daily_capacity: Capacity | None = None


class VenueUpdate(Input):
    name_zh: Name | msgspec.UnsetType = msgspec.UNSET
    name_en: Name | None | msgspec.UnsetType = msgspec.UNSET
    district: DistrictCode | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    location: Location | None | msgspec.UnsetType = msgspec.UNSET
    domain: Domain | msgspec.UnsetType = msgspec.UNSET
    opening_hours: OpeningHours | msgspec.UnsetType = msgspec.UNSET
    daily_capacity: Capacity | None | msgspec.UnsetType = msgspec.UNSET
    status: VenueStatus | msgspec.UnsetType = msgspec.UNSET


class Venue(Record):
    id: UUID
    merchant_id: UUID
    name_zh: str
    name_en: str | None
    district: str
    address: str
    location: Location | None
    domain: Domain
    opening_hours: list[OpeningPeriod]
    daily_capacity: int | None
    status: VenueStatus
    created_at: datetime
    updated_at: datetime


class PublicVenue(Record):
    """A venue as anyone may see it: where, what kind, when open."""

    id: UUID
    name_zh: str
    name_en: str | None
    merchant_name: str
    district: str
    district_name_zh: str
    address: str
    location: Location | None
    domain: Domain
    opening_hours: list[OpeningPeriod]
    benefit_codes: list[str]
    """Active benefits offered here (`GET /v1/benefits` has the details)."""


class DeviceCreate(Input):
    venue_id: UUID
    label: Label


class Device(Record):
    id: UUID
    venue_id: UUID
    merchant_id: UUID
    label: str
    status: DeviceStatus
    created_at: datetime
    revoked_at: datetime | None
    last_token_at: datetime | None


class ProvisionedDevice(Record):
    """Answer to provisioning or rolling: the secret appears here once and is never shown again."""

    device_id: UUID
    secret: str
    setup_qr_url: str
    setup_qr_expires_in: int


class DeviceCredentials(Record):
    """A device that proved its secret: what its token will say."""

    device_id: UUID
    venue_id: UUID
    merchant_id: UUID
    secret_generation: int


class DeviceTokenRequest(Input):
    device_id: UUID
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class DeviceToken(Record, kw_only=True):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


class DeviceIdentity(Record):
    """What a configured scanner shows about itself."""

    device_id: UUID
    label: str
    venue_id: UUID
    venue_name_zh: str
    venue_name_en: str | None
    merchant_id: UUID
    merchant_name: str
