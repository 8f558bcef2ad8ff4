"""Shapes of the city identity adapter."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from foundation.structs import Record

__all__ = ("CityIdentity", "CitySource")

CitySource = Literal["dev-city", "city-platform", "trusted-issuer"]


class CityIdentity(Record, kw_only=True):
    """What a verified 随申码 tells us. Never the ID number itself: only its blind index."""

    subject: str
    """the city platform's subject for this citizen"""
    id_hmac: bytes
    """blind index of the ID number (same HMAC as `people.id_hmac`), the crypto profile's"""
    id_hmac_alt: bytes | None = None
    """the other profile's index of the same number: finds a person enrolled before a switch"""
    name_masked: str | None
    jti: str
    """the code's unique id: single use is enforced by whoever consumes it"""
    issued_at: datetime
    expires_at: datetime
    source: CitySource
