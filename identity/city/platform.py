"""The production 随申码 provider: an HTTP client of the city platform's online 验码 interface.

The platform's real contract is not public (see reference/identity.md §1), so this client
speaks the smallest contract such an interface needs, to be adapted when the integration is
signed:

    POST <CHONGJUN_CITY_PLATFORM_URL>        {"code": "<scanned text>"}
    200 {"result": "valid", "subject": "...", "id_number": "...", "name": "...",
         "code_id": "...", "expires_at": <unix seconds>}
    200 {"result": "invalid"} | {"result": "expired"}

It fails closed: a timeout, a transport error, any status but 200, a reply over 16 KiB or one
that does not match the contract is `CityPlatformUnavailable` (503) and nobody is let in. The
ID number in a valid reply is normalised, blind-indexed and dropped at once; the name is masked
and dropped. Neither is ever logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import Annotated

import httpx
import msgspec

from foundation.structs import Record
from identity.city.errors import CityPlatformUnavailable
from identity.city.types import CityIdentity
from identity.errors import ExpiredCode, InvalidCode
from identity.pii import InvalidIdNumber, PiiVault, mask_name

__all__ = ("MAX_CODE_LENGTH", "MAX_REPLY_BYTES", "PlatformCityProvider")

log = logging.getLogger("chongjun.city")

MAX_CODE_LENGTH = 1024
MAX_REPLY_BYTES = 16 * 1024
DEFAULT_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
OVERALL_TIMEOUT_SECONDS = 5.0
"""Wall-clock bound on one verification, whatever the platform does (a slow drip included)."""
MAX_CODE_LIFETIME_SECONDS = 24 * 3600


class _Valid(Record, tag_field="result", tag="valid"):
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    id_number: Annotated[str, msgspec.Meta(min_length=15, max_length=32)]
    code_id: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
    expires_at: Annotated[int, msgspec.Meta(gt=0)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class _Invalid(Record, tag_field="result", tag="invalid"):
    pass


class _Expired(Record, tag_field="result", tag="expired"):
    pass


_Reply = _Valid | _Invalid | _Expired
_decoder = msgspec.json.Decoder(_Reply)


class PlatformCityProvider:
    """Verifies 随申码 online against the city platform. One pooled HTTP client per process."""

    source = "city-platform"

    def __init__(
        self,
        url: str,
        vault: PiiVault,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        overall_timeout: float = OVERALL_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("CHONGJUN_CITY_PLATFORM_URL must be an http(s) URL")
        self.url = url
        self._vault = vault
        self._overall = overall_timeout
        headers = {"accept": "application/json", "user-agent": "chongjun/1"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            timeout=timeout, headers=headers, follow_redirects=False, transport=transport, trust_env=False
        )

    @staticmethod
    def handles(raw: str) -> bool:
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _ask(self, raw: str) -> bytes:
        async with self._client.stream("POST", self.url, json={"code": raw}) as response:
            if response.status_code != 200:
                raise CityPlatformUnavailable(f"status {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
                raise CityPlatformUnavailable("reply too large (declared)")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    raise CityPlatformUnavailable("reply too large")
            return bytes(body)

    async def verify(self, raw: object, *, now: float | None = None) -> CityIdentity:
        if not isinstance(raw, str) or not 1 <= len(raw) <= MAX_CODE_LENGTH or not raw.isascii() or not raw.isprintable():
            raise InvalidCode("not a 随申码")
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._overall):
                body = await self._ask(raw)
        except CityPlatformUnavailable as exc:
            log.warning("city platform refused", extra={"fields": {"reason": exc.reason}})
            raise
        except (TimeoutError, httpx.TimeoutException):
            log.warning("city platform timed out", extra={"fields": {"seconds": round(time.monotonic() - started, 2)}})
            raise CityPlatformUnavailable("timeout") from None
        except httpx.HTTPError as exc:
            log.warning("city platform unreachable", extra={"fields": {"error": type(exc).__name__}})
            raise CityPlatformUnavailable(type(exc).__name__) from None
        try:
            reply = _decoder.decode(body)
        except msgspec.DecodeError:
            log.warning("city platform reply malformed")
            raise CityPlatformUnavailable("malformed reply") from None
        if isinstance(reply, _Invalid):
            raise InvalidCode("platform: invalid")
        if isinstance(reply, _Expired):
            raise ExpiredCode("platform: expired")
        try:
            id_hmac, id_hmac_alt = self._vault.indexes_of(reply.id_number)
        except InvalidIdNumber:
            log.warning("city platform reply carries an invalid ID number")
            raise CityPlatformUnavailable("malformed reply") from None
        clock = time.time() if now is None else now
        if not clock - 30 < reply.expires_at <= clock + MAX_CODE_LIFETIME_SECONDS:
            # The platform says valid but the lifetime is absurd: its clock or its reply is wrong.
            log.warning("city platform reply has an implausible expiry")
            raise CityPlatformUnavailable("implausible expiry")
        return CityIdentity(
            subject=reply.subject,
            id_hmac=id_hmac,
            id_hmac_alt=id_hmac_alt,
            name_masked=mask_name(reply.name) if reply.name else None,
            # Namespaced and hashed so a platform id can never collide with one of our jtis.
            jti="cp_" + hashlib.sha256(reply.code_id.encode()).hexdigest()[:32],
            issued_at=datetime.fromtimestamp(clock, UTC),
            expires_at=datetime.fromtimestamp(reply.expires_at, UTC),
            source="city-platform",
        )
