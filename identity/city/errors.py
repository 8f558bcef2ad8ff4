"""Errors of the city identity adapter."""

from __future__ import annotations

from foundation.errors import Unavailable

__all__ = ("CityPlatformUnavailable", "DevIssuerRefused")


class DevIssuerRefused(RuntimeError):
    """The simulated city platform was asked to run with CHONGJUN_ENV=production."""

    def __init__(self) -> None:
        super().__init__("the simulated city platform (dev 随申码 issuer) refuses to run when CHONGJUN_ENV=production")


class CityPlatformUnavailable(Unavailable):
    """The city platform did not give a usable answer (timeout, error, malformed or oversized reply).

    Fail closed: nobody is let in on a platform failure, and the caller is told to retry later
    rather than that their code is bad.
    """

    type = "city-platform-unavailable"
    title = "The city identity platform is unavailable"

    def __init__(self, reason: str) -> None:
        self.reason = reason  # for the server log only
        super().__init__("The city identity platform did not answer; please try again shortly")
