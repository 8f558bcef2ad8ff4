"""The simulated city platform (dev only): it issues `SSM1:` 随申码 and verifies them.

The real 随申码 format is not public and the platform verifies it online, so in dev this
simulator plays the platform: `SSM1:` + a compact JWS (EdDSA / Ed25519) with `iss`
`dev-city-idp`, `aud` `cjmf`, `typ` `ssm+jwt`, `sub` (the city's subject for the citizen), `idh`
(the blind index of the ID number, the same keyed HMAC as `people.id_hmac`), `nm` (masked name),
`asr` (`real_person`), `iat`, `exp` (60 s by default, at most 3600 s) and `jti`. Its key lives
under the data directory and its JWKS is served at `/dev-city/.well-known/jwks.json`.

It refuses to exist when CHONGJUN_ENV=production: the constructor raises, so neither the route,
the CLI nor the scan pipeline can use it there.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from foundation.encoding import b64url, unb64url
from foundation.settings import Settings
from identity.city.errors import DevIssuerRefused
from identity.city.types import CityIdentity
from identity.errors import ExpiredCode, InvalidCode
from identity.pii import PiiVault
from identity.signing import JwsInvalid, claims_refused, verify_compact_jws
from identity.tokens import unverified_header

__all__ = (
    "AUDIENCE",
    "DEFAULT_TTL_SECONDS",
    "ISSUER",
    "LEEWAY_SECONDS",
    "MAX_CODE_LENGTH",
    "MAX_TTL_SECONDS",
    "PREFIX",
    "TYP",
    "DevCityIssuer",
)

PREFIX = "SSM1:"
ISSUER = "dev-city-idp"
AUDIENCE = "cjmf"
TYP = "ssm+jwt"
DEFAULT_TTL_SECONDS = 60
MAX_TTL_SECONDS = 3600
LEEWAY_SECONDS = 30
MAX_CODE_LENGTH = 1024
KEY_FILE = Path("dev-city") / "ed25519.pem"
_REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "idh"]
_COMPACT = re.compile(r"[A-Za-z0-9_-]{2,256}\.[A-Za-z0-9_-]{2,768}\.[A-Za-z0-9_-]{43,128}")
_B64_32 = re.compile(r"[A-Za-z0-9_-]{43}")
_JTI = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The simulator's key; created once (0600, atomically: concurrent workers agree on one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(staging, path)  # fails if another process won: everyone reads the winner's key
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} is not an Ed25519 private key")
    return key


class DevCityIssuer:
    """Issues and verifies simulated 随申码. Raises DevIssuerRefused in production."""

    source = "dev-city"

    def __init__(self, settings: Settings, vault: PiiVault, *, key: Ed25519PrivateKey | None = None) -> None:
        if settings.is_production:
            raise DevIssuerRefused()
        self._vault = vault
        self._key = key or _load_or_create_key(settings.data_dir / KEY_FILE)
        self._public: Ed25519PublicKey = self._key.public_key()
        x = b64url(self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        # RFC 7638 thumbprint: the required members in lexicographic order, no whitespace.
        self.kid = b64url(hashlib.sha256(f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()).digest())[:16]
        self._jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA", "use": "sig"}
        seed = self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        self._subject_key = hashlib.sha256(b"dev-city-subject\0" + seed).digest()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    @staticmethod
    def handles(raw: str) -> bool:
        return raw.startswith(PREFIX)

    def subject_for(self, id_hmac: bytes) -> str:
        """The city's stable subject for a citizen (a pseudonym, as a real platform would use)."""
        return "dc_" + b64url(hashlib.blake2b(id_hmac, key=self._subject_key, digest_size=16).digest())

    def issue(
        self,
        id_number: str,
        *,
        name_masked: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        now: float | None = None,
    ) -> str:
        """A 随申码 for the citizen with this ID number (validated: InvalidIdNumber otherwise)."""
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise ValueError(f"ttl_seconds must be 1..{MAX_TTL_SECONDS}")
        id_hmac, id_hmac_alt = self._vault.indexes_of(id_number)
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.subject_for(id_hmac),
            "idh": b64url(id_hmac),
            "ida": b64url(id_hmac_alt),  # the other profile's index (a person enrolled before a switch)
            "asr": "real_person",
            "iat": issued,
            "exp": issued + ttl_seconds,
            "jti": b64url(os.urandom(16)),
        }
        if name_masked:
            claims["nm"] = name_masked
        token = jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid, "typ": TYP})
        return PREFIX + token

    async def verify(self, raw: object, *, now: float | None = None) -> CityIdentity:
        return self.verify_sync(raw, now=now)

    def verify_sync(self, raw: object, *, now: float | None = None) -> CityIdentity:
        """The identity behind a 随申码: InvalidCode for anything forged or malformed, ExpiredCode
        (only once the signature held) for a genuine code past `exp` + 30 s."""
        if not isinstance(raw, str) or len(raw) > MAX_CODE_LENGTH or not raw.startswith(PREFIX):
            raise InvalidCode("not a dev 随申码")
        token = raw[len(PREFIX) :]
        if not _COMPACT.fullmatch(token):
            raise InvalidCode("malformed 随申码")
        header = unverified_header(token, InvalidCode)
        if header.get("kid") != self.kid or header.get("alg") != "EdDSA" or header.get("typ") != TYP:
            raise InvalidCode("unknown kid, algorithm or type")
        try:
            _, claims = verify_compact_jws(token, self._public, "EdDSA")
        except JwsInvalid as exc:
            raise InvalidCode(f"rejected: {exc}") from None
        refused = claims_refused(claims, issuer=ISSUER, audience=AUDIENCE, required=_REQUIRED)
        if refused is not None:
            raise InvalidCode(f"rejected: {refused}")
        clock = time.time() if now is None else now
        issued, expires = claims["iat"], claims["exp"]
        if not all(isinstance(value, int) and not isinstance(value, bool) for value in (issued, expires)):
            raise InvalidCode("iat/exp not integers")
        if issued > clock + LEEWAY_SECONDS or not 0 < expires - issued <= MAX_TTL_SECONDS:
            raise InvalidCode("iat in the future or lifetime out of range")
        idh, jti, sub, name = claims["idh"], claims["jti"], claims["sub"], claims.get("nm")
        ida = claims.get("ida")
        if not (isinstance(idh, str) and _B64_32.fullmatch(idh)) or not (isinstance(jti, str) and _JTI.fullmatch(jti)):
            raise InvalidCode("idh or jti malformed")
        if ida is not None and not (isinstance(ida, str) and _B64_32.fullmatch(ida)):
            raise InvalidCode("ida malformed")
        if not isinstance(sub, str) or not 1 <= len(sub) <= 128 or (name is not None and not isinstance(name, str)):
            raise InvalidCode("sub or nm malformed")
        if expires <= clock - LEEWAY_SECONDS:
            raise ExpiredCode("expired 随申码")
        return CityIdentity(
            subject=sub,
            id_hmac=unb64url(idh),
            id_hmac_alt=unb64url(ida) if ida is not None else None,
            name_masked=name[:50] if name else None,
            jti=jti,
            issued_at=datetime.fromtimestamp(issued, UTC),
            expires_at=datetime.fromtimestamp(expires, UTC),
            source="dev-city",
        )
