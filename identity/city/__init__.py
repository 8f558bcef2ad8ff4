"""City identity: the `CityIdentityProvider` adapter, its dev simulator and the platform client.

Which provider verifies a scanned or presented 随申码:
- `SSM1:` codes go to the dev simulator, which exists only outside production;
- a code whose prefix is a trusted issuer's (the 长三角 trust list, `identity.issuers`) goes to
  that issuer (`issuers`, a `TrustedIssuers` snapshot the app keeps fresh);
- anything else goes to the platform client when `CHONGJUN_CITY_PLATFORM_URL` is set;
- otherwise the code is simply invalid (the same 401 as a forgery).
"""

from __future__ import annotations

from typing import Protocol

from foundation.settings import Settings
from identity.city.dev import PREFIX as DEV_PREFIX
from identity.city.dev import DevCityIssuer
from identity.city.errors import CityPlatformUnavailable, DevIssuerRefused
from identity.city.platform import PlatformCityProvider
from identity.city.types import CityIdentity
from identity.errors import InvalidCode
from identity.pii import PiiVault

__all__ = (
    "DEV_PREFIX",
    "CityIdentity",
    "CityIdentityProvider",
    "CityPlatformUnavailable",
    "CityProviders",
    "DevCityIssuer",
    "DevIssuerRefused",
    "PlatformCityProvider",
)


class CityIdentityProvider(Protocol):
    source: str

    def handles(self, raw: str) -> bool: ...

    async def verify(self, raw: object, *, now: float | None = None) -> CityIdentity: ...


class CityProviders:
    """The providers of one process: the dev simulator (never in production) and the platform client."""

    def __init__(self, *, dev: DevCityIssuer | None, platform: PlatformCityProvider | None, issuers=None) -> None:
        self.dev = dev
        self.platform = platform
        self.issuers = issuers  # identity.issuers.TrustedIssuers (not imported here: it imports this package)

    @classmethod
    def from_settings(cls, settings: Settings, vault: PiiVault, *, platform_api_key: str | None = None) -> CityProviders:
        dev = None if settings.is_production else DevCityIssuer(settings, vault)
        platform = (
            PlatformCityProvider(settings.city_platform_url, vault, api_key=platform_api_key)
            if settings.city_platform_url
            else None
        )
        return cls(dev=dev, platform=platform)

    def provider_for(self, raw: str) -> CityIdentityProvider | None:
        if raw.startswith(DEV_PREFIX):
            return self.dev
        if self.issuers is not None and self.issuers.issuer_for(raw) is not None:
            return self.issuers
        return self.platform

    async def verify(self, raw: object, *, now: float | None = None) -> CityIdentity:
        """InvalidCode / ExpiredCode for a bad code, CityPlatformUnavailable when the platform fails."""
        provider = self.provider_for(raw) if isinstance(raw, str) else None
        if provider is None:
            raise InvalidCode("no provider for this code")
        return await provider.verify(raw, now=now)

    async def aclose(self) -> None:
        if self.platform is not None:
            await self.platform.aclose()
        if self.issuers is not None:
            await self.issuers.aclose()
