"""The 长三角 trust list: identity issuers beyond Shanghai's 随申码, and the codes they issue.

- City admins add an issuer (`jwks`: its codes are compact JWS checked with the keys held here;
  `online`: its codes go to its 验码 URL, the reply contract of the 随申码 platform client), and
  suspend, reactivate or retire it (retired is final). Each change is audited and takes the next
  trust list version.
- `trust_list_token` is the signed document verifiers and gates download (`typ`
  `cj-trust-list+jwt`, signed by the app's key ring, `version` only grows, `exp` 24 h);
  `verify_trust_list` is its offline check, refusing a list older than one already seen.
- `TrustedIssuers` is a worker's snapshot of the table (reloaded every few seconds by the app,
  and at once by the worker that made a change): it routes a code by its prefix to its issuer and
  verifies it there. A suspended or retired issuer's codes are refused like a forgery.

A `jwks` issuer's code is `<prefix><JWS>` with `typ` `cj-issuer-code+jwt`, `iss` = the issuer's
code, `aud` `cjmf`, `sub`, `idn` (the holder's ID number: turned into our blind index at once and
never stored or logged), `iat`, `exp` (at most an hour later) and `jti`. Its `jti` is namespaced
by the issuer's code, so it cannot collide with another issuer's in the ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import jwt
import msgspec
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from foundation.audit import write_audit
from identity.city.dev import PREFIX as DEV_PREFIX
from identity.city.platform import PlatformCityProvider
from identity.city.types import CityIdentity
from identity.codes import CODE_PREFIX
from identity.errors import ExpiredCode, InvalidCode
from identity.issuers import db
from identity.issuers.errors import InvalidIssuer, IssuerExists, IssuerNotFound, IssuerStatusRefused
from identity.issuers.types import IssuerCreate, IssuerView, TrustedIssuer
from identity.keys import KeyRing
from identity.tokens import sign_document
from identity.pii import InvalidIdNumber, PiiVault
from identity.signing import JwsRefused, verify_typed_jws
from identity.types import Principal

__all__ = (
    "ISSUER_CODE_TYPE",
    "SHANGHAI_ISSUER",
    "TRUST_LIST_TYPE",
    "TrustListRefused",
    "TrustedIssuers",
    "create_issuer",
    "list_issuers",
    "set_issuer_status",
    "trust_list_token",
    "verify_trust_list",
)

ISSUER_CODE_TYPE = "cj-issuer-code+jwt"
TRUST_LIST_TYPE = "cj-trust-list+jwt"
TRUST_LIST_EXP = 24 * 3600
MAX_CODE_LENGTH = 2048
MAX_TTL = 3600
LEEWAY = 30
SHANGHAI_ISSUER = {"code": "SH-SUISHEN", "name": "随申码 (上海)", "province": "310000", "kind": "online",
                   "code_prefix": None, "status": "active"}
"""Shanghai's own issuer: always trusted, verified by the city platform (or the dev simulator)."""
_RESERVED_PREFIXES = (CODE_PREFIX, DEV_PREFIX)
_TRANSITIONS = {"active": {"suspended", "retired"}, "suspended": {"active", "retired"}, "retired": set()}


def _view(row: asyncpg.Record) -> IssuerView:
    return IssuerView(**{k: row[k] for k in IssuerView.__struct_fields__})


def _issuer_keys(jwks: Any) -> dict[str, tuple[Any, str]]:
    keys: dict[str, tuple[Any, str]] = {}
    for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or "d" in jwk:
            raise ValueError("every key needs a kid and must be public")
        text = json.dumps({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
        if jwk.get("alg") == "EdDSA" and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            keys[jwk["kid"]] = (OKPAlgorithm.from_jwk(text), "EdDSA")
        elif jwk.get("alg") == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            keys[jwk["kid"]] = (ECAlgorithm.from_jwk(text), "ES256")
        else:
            raise ValueError("keys are Ed25519 (alg EdDSA) or P-256 (alg ES256)")
    if not keys:
        raise ValueError("a jwks issuer needs at least one key")
    return keys


async def create_issuer(conn: asyncpg.Connection, caller: Principal, data: IssuerCreate) -> IssuerView:
    if data.code_prefix in _RESERVED_PREFIXES or data.code == SHANGHAI_ISSUER["code"]:
        raise InvalidIssuer("That code or prefix is reserved (崇军码, 随申码)")
    if data.kind == "jwks":
        if data.jwks is None or data.verify_url is not None:
            raise InvalidIssuer("a jwks issuer has `jwks` and no `verify_url`")
        try:
            _issuer_keys(data.jwks)
        except (ValueError, jwt.PyJWTError) as exc:
            raise InvalidIssuer(f"jwks: {exc}") from None
    elif data.verify_url is None or data.jwks is not None:
        raise InvalidIssuer("an online issuer has `verify_url` and no `jwks`")
    row = await db.insert_issuer(conn, **msgspec.structs.asdict(data))
    if row is None:
        raise IssuerExists()
    await write_audit(conn, actor_kind=caller.kind, actor_id=str(caller.subject), action="issuer.create",
                      object_kind="issuer", object_id=data.code,
                      detail={"kind": data.kind, "province": data.province, "revision": row["revision"]})
    return _view(row)


async def list_issuers(conn: asyncpg.Connection) -> list[IssuerView]:
    return [_view(row) for row in await db.list_issuers(conn)]


async def set_issuer_status(conn: asyncpg.Connection, caller: Principal, code: str, status: str) -> IssuerView:
    async with conn.transaction():
        row = await db.get_issuer(conn, code, lock=True)
        if row is None:
            raise IssuerNotFound()
        if status == row["status"]:
            return _view(row)
        if status not in _TRANSITIONS[row["status"]]:
            raise IssuerStatusRefused(f"{row['status']} → {status} is not allowed")
        changed = await db.set_status(conn, code, status)
        await write_audit(conn, actor_kind=caller.kind, actor_id=str(caller.subject), action="issuer.status",
                          object_kind="issuer", object_id=code,
                          detail={"from": row["status"], "to": status, "revision": changed["revision"]})
    return _view(changed)


async def trust_list_token(conn: asyncpg.Connection, *, keyring: KeyRing, base_url: str, now: float | None = None) -> str:
    """The signed trust list as it stands now (every issuer with its status; retired ones too,
    so a gate that saw one active learns it is gone)."""
    rows = await db.list_issuers(conn)
    iat = int(time.time() if now is None else now)
    issuers = [SHANGHAI_ISSUER] + [
        {"code": r["code"], "name": r["name"], "province": r["province"], "kind": r["kind"], "code_prefix": r["code_prefix"],
         "status": r["status"], **({"jwks": r["jwks"]} if r["jwks"] is not None else {}),
         **({"verify_url": r["verify_url"]} if r["verify_url"] is not None else {})}
        for r in rows
    ]
    payload = {"iss": base_url.rstrip("/"), "iat": iat, "exp": iat + TRUST_LIST_EXP,
               "version": await db.list_version(conn), "issuers": issuers}
    return sign_document(keyring, payload, typ=TRUST_LIST_TYPE)


class TrustListRefused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def verify_trust_list(token: str, *, key_for: Any, now: float, last_version: int = 0) -> dict[str, Any]:
    """A downloaded trust list, checked offline: our key, its type, not expired, not rolled back."""
    try:
        claims = verify_typed_jws(token, typ=TRUST_LIST_TYPE, key_for=key_for)
    except JwsRefused as refused:
        header = refused.header
        raise TrustListRefused(refused.step, {
            "malformed": "not a JWS",
            "wrong-type": f"typ is {header.get('typ')!r}",
            "unknown-key": f"key {header.get('kid')!r} is not trusted",
            "bad-signature": "the trust list's signature does not verify",
        }[refused.step]) from None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise TrustListRefused("expired", "the trust list has expired: download it again")
    if not isinstance(claims.get("version"), int) or claims["version"] < last_version:
        raise TrustListRefused("rolled-back", f"version {claims.get('version')} is older than {last_version} already seen")
    return claims


class TrustedIssuers:
    """A worker's snapshot of the trust list: routes a code by prefix and verifies it at its issuer."""

    RELOAD_SECONDS = 5.0

    def __init__(self, vault: PiiVault) -> None:
        self._vault = vault
        self._by_prefix: dict[str, TrustedIssuer] = {}
        self._keys: dict[str, dict[str, tuple[Any, str]]] = {}
        self._online: dict[tuple[str, str], PlatformCityProvider] = {}
        self.version = -1

    async def load(self, conn: asyncpg.Connection) -> None:
        rows = await db.list_issuers(conn)
        by_prefix, keys = {}, {}
        for r in rows:
            issuer = TrustedIssuer(code=r["code"], province=r["province"], kind=r["kind"], code_prefix=r["code_prefix"],
                                   status=r["status"], jwks=r["jwks"], verify_url=r["verify_url"])
            by_prefix[issuer.code_prefix] = issuer
            if issuer.kind == "jwks" and issuer.status == "active":
                keys[issuer.code] = _issuer_keys(issuer.jwks)
        self._by_prefix, self._keys = by_prefix, keys
        self.version = max((r["revision"] for r in rows), default=0)

    def issuer_for(self, raw: str) -> TrustedIssuer | None:
        colon = raw.find(":")
        return self._by_prefix.get(raw[: colon + 1]) if 0 < colon <= 8 else None

    async def verify(self, raw: str, *, now: float | None = None) -> CityIdentity:
        issuer = self.issuer_for(raw)
        if issuer is None:
            raise InvalidCode("no trusted issuer for this prefix")
        if issuer.status != "active":
            raise InvalidCode(f"issuer {issuer.code} is {issuer.status}")
        if issuer.kind == "online":
            provider = self._online.get((issuer.code, issuer.verify_url))
            if provider is None:
                provider = self._online[(issuer.code, issuer.verify_url)] = PlatformCityProvider(issuer.verify_url, self._vault)
            identity = await provider.verify(raw, now=now)
            return msgspec.structs.replace(identity, jti=f"{issuer.code}:{identity.jti}", source="trusted-issuer")
        return self._verify_jws(issuer, raw[len(issuer.code_prefix):], now=time.time() if now is None else now)

    def _verify_jws(self, issuer: TrustedIssuer, token: str, *, now: float) -> CityIdentity:
        if len(token) > MAX_CODE_LENGTH:
            raise InvalidCode("code too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidCode("unreadable header") from None
        found = self._keys.get(issuer.code, {}).get(str(header.get("kid")))
        if found is None or header.get("alg") != found[1] or header.get("typ") != ISSUER_CODE_TYPE:
            raise InvalidCode("unknown kid, algorithm or type")
        try:
            claims = jwt.decode(token, found[0], algorithms=[found[1]], audience="cjmf", issuer=issuer.code,
                                options={"require": ["iss", "aud", "sub", "iat", "exp", "jti", "idn"],
                                         "verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidCode(f"rejected: {type(exc).__name__}") from None
        issued, expires, jti, sub = claims["iat"], claims["exp"], claims["jti"], claims["sub"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (issued, expires)):
            raise InvalidCode("iat/exp not integers")
        if issued > now + LEEWAY or not 0 < expires - issued <= MAX_TTL:
            raise InvalidCode("iat in the future or lifetime out of range")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 64 or not isinstance(sub, str) or not 1 <= len(sub) <= 128:
            raise InvalidCode("jti or sub malformed")
        try:
            indexes = self._vault.indexes_of(claims["idn"]) if isinstance(claims["idn"], str) else None
        except InvalidIdNumber:
            indexes = None
        if indexes is None:
            raise InvalidCode("idn is not an ID number")
        if expires <= now - LEEWAY:
            raise ExpiredCode("expired code")
        return CityIdentity(
            subject=f"{issuer.code}:{sub}", id_hmac=indexes[0], id_hmac_alt=indexes[1], name_masked=None,
            jti=f"{issuer.code}:{jti}",
            issued_at=datetime.fromtimestamp(issued, UTC), expires_at=datetime.fromtimestamp(expires, UTC),
            source="trusted-issuer",
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._online.values()), return_exceptions=True)
