"""SD-JWT (RFC 9901) and SD-JWT VC (draft-ietf-oauth-sd-jwt-vc-18): issue, present, verify.

Implemented by hand on PyJWT's JWS: the one PyPI implementation (OpenWallet `sd-jwt` 0.10.4,
2024) predates RFC 9901 and the `dc+sd-jwt` type, and what we need is small. The parts the
RFC's examples pin down are tested against them (tests/credentials/test_sdjwt.py):

- a disclosure is base64url(UTF-8 JSON `[salt, name, value]`) and its digest is SHA-256 over the
  **ASCII of that base64url string** (never re-serialised: the bytes are fixed at issuance);
- the compact form is `<issuer-JWT>~<D1>~...~<Dn>~[<KB-JWT>]`;
- `sd_hash` in the KB-JWT is the digest of everything before the KB-JWT, final `~` included.

Verification follows RFC 9901 §7.1 and §7.3 and raises one `SdJwtRefused(reason, detail)` with a
stable reason, so a verifier can say exactly why a presentation failed. Key binding is always
required here (verifier policy, never decided by whether a KB-JWT happens to be present).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from foundation.encoding import b64url, unb64url
from identity.credentials.errors import VerificationRefused

__all__ = (
    "KB_TYPE",
    "SD_JWT_TYPES",
    "SdJwtRefused",
    "VerifiedSdJwt",
    "disclosure_digest",
    "holder_public_key",
    "issue_sd_jwt",
    "make_disclosure",
    "parse_compact",
    "present",
    "sd_hash",
    "verify_presentation",
)

SD_JWT_TYPES = ("dc+sd-jwt", "vc+sd-jwt")  # vc+sd-jwt accepted for the transition (VC18 §2.2.1)
KB_TYPE = "kb+jwt"
SD_ALG = "sha-256"
NEVER_DISCLOSABLE = frozenset({"iss", "nbf", "exp", "cnf", "vct", "vct#integrity", "aka_vcts", "status", "_sd", "_sd_alg", "..."})


class SdJwtRefused(VerificationRefused):
    """A presentation that does not verify."""


def make_disclosure(name: str | None, value: Any, *, salt: str | None = None) -> str:
    """A disclosure for an object property (`name`) or an array element (`name=None`)."""
    if name in ("_sd", "..."):
        raise ValueError(f"{name!r} cannot be a disclosed claim name")
    salt = salt or b64url(os.urandom(16))  # 128 bits (RFC 9901 §9.3)
    content = [salt, value] if name is None else [salt, name, value]
    return b64url(json.dumps(content, ensure_ascii=False).encode("utf-8"))


def disclosure_digest(disclosure: str) -> str:
    """SHA-256 over the ASCII bytes of the base64url disclosure, base64url (RFC 9901 §4.2.3)."""
    return b64url(hashlib.sha256(disclosure.encode("ascii")).digest())


def sd_hash(issuer_jwt: str, disclosures: Iterable[str]) -> str:
    """The digest of `<issuer-JWT>~<D1>~...~<Dn>~`, the string a KB-JWT is bound to."""
    return b64url(hashlib.sha256(_join(issuer_jwt, list(disclosures)).encode("ascii")).digest())


def _join(issuer_jwt: str, disclosures: list[str]) -> str:
    return "~".join([issuer_jwt, *disclosures]) + "~"


@dataclass(frozen=True, slots=True)
class Compact:
    issuer_jwt: str
    disclosures: list[str]
    kb_jwt: str | None


def parse_compact(text: str) -> Compact:
    text = text.strip()
    if "~" not in text:
        raise SdJwtRefused("malformed", "an SD-JWT has at least one '~' after the issuer-signed JWT")
    parts = text.split("~")
    kb = parts[-1] or None
    issuer_jwt, disclosures = parts[0], parts[1:-1]
    if not issuer_jwt or any(not d for d in disclosures):
        raise SdJwtRefused("malformed", "empty part between '~' separators")
    return Compact(issuer_jwt, disclosures, kb)


def issue_sd_jwt(
    *,
    claims: Mapping[str, Any],
    disclosable: Mapping[str, Any],
    private_key: Any,
    alg: str,
    kid: str,
    typ: str = "dc+sd-jwt",
    decoys: int = 2,
) -> tuple[str, list[str]]:
    """`(compact SD-JWT without KB, disclosures)`: `claims` always visible, `disclosable` one disclosure each."""
    clash = set(disclosable) & (set(claims) | NEVER_DISCLOSABLE)
    if clash:
        raise ValueError(f"claims that must not be selectively disclosable, or given twice: {sorted(clash)}")
    disclosures = [make_disclosure(name, value) for name, value in disclosable.items()]
    digests = [disclosure_digest(d) for d in disclosures]
    digests += [b64url(hashlib.sha256(os.urandom(32)).digest()) for _ in range(decoys)]  # RFC 9901 §4.2.5
    payload = {**claims, "_sd": sorted(digests), "_sd_alg": SD_ALG}
    token = jwt.encode(payload, private_key, algorithm=alg, headers={"kid": kid, "typ": typ})
    return _join(token, disclosures), disclosures


def present(sd_jwt: str, *, names: Iterable[str] | None, holder_key: Any, holder_alg: str, aud: str, nonce: str, iat: int) -> str:
    """The holder's presentation: the chosen disclosures (all if `names` is None) and a KB-JWT."""
    compact = parse_compact(sd_jwt)
    chosen = compact.disclosures
    if names is not None:
        wanted = set(names)
        chosen = [d for d in compact.disclosures if _decode_disclosure(d)[1] in wanted]
    kb = jwt.encode(
        {"iat": iat, "aud": aud, "nonce": nonce, "sd_hash": sd_hash(compact.issuer_jwt, chosen)},
        holder_key,
        algorithm=holder_alg,
        headers={"typ": KB_TYPE},
    )
    return _join(compact.issuer_jwt, chosen) + kb


def _decode_disclosure(disclosure: str) -> tuple[str, str | None, Any]:
    try:
        content = json.loads(unb64url(disclosure, strict=True).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SdJwtRefused("bad-disclosure", f"a disclosure is not base64url JSON ({type(exc).__name__})") from None
    if not isinstance(content, list) or len(content) not in (2, 3) or not isinstance(content[0], str):
        raise SdJwtRefused("bad-disclosure", "a disclosure is not [salt, name, value] or [salt, value]")
    if len(content) == 2:
        return content[0], None, content[1]
    if not isinstance(content[1], str) or content[1] in ("_sd", "..."):
        raise SdJwtRefused("bad-disclosure", "a disclosure's claim name is not a string or is reserved")
    return content[0], content[1], content[2]


def _resolve(payload: dict[str, Any], disclosures: list[str]) -> dict[str, Any]:
    """RFC 9901 §7.1 steps 3-5: replace digests by their disclosed values; every disclosure used once."""
    by_digest: dict[str, str] = {}
    for d in disclosures:
        digest = disclosure_digest(d)
        if digest in by_digest:
            raise SdJwtRefused("bad-disclosure", "the same disclosure is presented twice")
        by_digest[digest] = d
    seen: set[str] = set()

    def take(digest: Any) -> str | None:
        if not isinstance(digest, str):
            raise SdJwtRefused("bad-digest", "a digest is not a string")
        if digest in seen:
            raise SdJwtRefused("bad-digest", "a digest appears more than once in the SD-JWT")
        seen.add(digest)
        return by_digest.get(digest)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                if key in ("_sd", "_sd_alg"):
                    continue
                out[key] = walk(value)
            sd = node.get("_sd", [])
            if not isinstance(sd, list):
                raise SdJwtRefused("bad-digest", "_sd is not an array")
            for digest in sd:
                disclosure = take(digest)
                if disclosure is None:
                    continue  # a decoy, or a claim the holder chose not to disclose
                _, name, value = _decode_disclosure(disclosure)
                if name is None:
                    raise SdJwtRefused("bad-disclosure", "an array-element disclosure is referenced from _sd")
                if name in out:
                    raise SdJwtRefused("bad-disclosure", f"claim {name!r} is both disclosed and in the clear")
                out[name] = walk(value)
            return out
        if isinstance(node, list):
            items: list[Any] = []
            for element in node:
                if isinstance(element, dict) and set(element) == {"..."}:
                    disclosure = take(element["..."])
                    if disclosure is None:
                        continue  # undisclosed elements are dropped
                    _, name, value = _decode_disclosure(disclosure)
                    if name is not None:
                        raise SdJwtRefused("bad-disclosure", "a property disclosure is referenced from an array")
                    items.append(walk(value))
                else:
                    items.append(walk(element))
            return items
        return node

    claims = walk(payload)
    unused = set(by_digest) - seen
    if unused:
        raise SdJwtRefused("bad-disclosure", f"{len(unused)} disclosure(s) not referenced by the issuer-signed JWT")
    return claims


def holder_public_key(jwk: Mapping[str, Any]) -> tuple[Any, str]:
    """`(public key, alg)` for a holder JWK: Ed25519 (EdDSA) or P-256 (ES256), public part only."""
    if not isinstance(jwk, Mapping) or "d" in jwk:
        raise ValueError("the holder key must be a public JWK")
    text = json.dumps({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        key = OKPAlgorithm.from_jwk(text)
        if isinstance(key, Ed25519PublicKey):
            return key, "EdDSA"
    if jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        key = ECAlgorithm.from_jwk(text)
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key, "ES256"
    raise ValueError("the holder key must be an Ed25519 (OKP) or P-256 (EC) JWK")


@dataclass(frozen=True, slots=True)
class VerifiedSdJwt:
    header: dict[str, Any]
    claims: dict[str, Any]  # the processed payload: disclosed claims in place, _sd removed
    disclosed: list[str]  # names of the disclosed claims


IssuerKey = Callable[[str], tuple[Any, str] | None]  # kid -> (public key, alg), None when unknown


def _jws(token: str, key: Any, alg: str, *, what: str) -> dict[str, Any]:
    try:
        # PyJWT's module registry, which has SM2 (identity.sm2jws) beside its own; `alg` is pinned by the caller.
        raw = jwt.api_jws.decode_complete(token, key, algorithms=[alg])
    except jwt.InvalidSignatureError:
        raise SdJwtRefused("bad-signature", f"the {what}'s signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise SdJwtRefused("malformed", f"the {what} is not a valid JWS ({type(exc).__name__})") from None
    try:
        payload = json.loads(raw["payload"])
    except ValueError:
        raise SdJwtRefused("malformed", f"the {what}'s payload is not JSON") from None
    if not isinstance(payload, dict):
        raise SdJwtRefused("malformed", f"the {what}'s payload is not a JSON object")
    return payload


def _header(token: str, *, what: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise SdJwtRefused("malformed", f"the {what} has no readable JOSE header") from None
    return header


def verify_presentation(
    presentation: str,
    *,
    issuer_key: IssuerKey,
    now: float,
    audience: str | None,
    nonce: str | None,
    kb_max_age: int = 300,
    leeway: int = 30,
) -> VerifiedSdJwt:
    """Verify an SD-JWT VC presentation with key binding; raise SdJwtRefused saying why not.

    `audience` / `nonce` None means "any" (an offline gate that pins neither checks the KB-JWT's
    freshness by `iat` alone).
    """
    compact = parse_compact(presentation)
    header = _header(compact.issuer_jwt, what="credential")
    if header.get("typ") not in SD_JWT_TYPES:
        raise SdJwtRefused("wrong-type", f"typ is {header.get('typ')!r}, not dc+sd-jwt")
    found = issuer_key(str(header.get("kid")))
    if found is None:
        raise SdJwtRefused("unknown-key", f"no issuer key with kid {header.get('kid')!r} in the trusted keys")
    key, alg = found
    if header.get("alg") != alg:
        raise SdJwtRefused("wrong-alg", f"alg {header.get('alg')!r} is not the key's {alg}")
    payload = _jws(compact.issuer_jwt, key, alg, what="credential")
    if payload.get("_sd_alg", SD_ALG) != SD_ALG:
        raise SdJwtRefused("bad-digest", f"_sd_alg {payload.get('_sd_alg')!r} is not supported")
    claims = _resolve(payload, compact.disclosures)
    for name in ("exp", "nbf", "iat"):
        if name in claims and not isinstance(claims[name], int):
            raise SdJwtRefused("malformed", f"{name} is not an integer")
    if "exp" not in claims or claims["exp"] + leeway <= now:
        raise SdJwtRefused("expired", "the credential has expired" if "exp" in claims else "the credential has no exp")
    if claims.get("nbf", 0) - leeway > now:
        raise SdJwtRefused("not-yet-valid", "the credential is not valid yet (nbf)")
    # Key binding (RFC 9901 §7.3): always required by this verifier.
    if compact.kb_jwt is None:
        raise SdJwtRefused("no-key-binding", "the presentation has no KB-JWT")
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or not isinstance(cnf.get("jwk"), dict):
        raise SdJwtRefused("no-key-binding", "the credential has no cnf.jwk")
    try:
        holder_key, holder_alg = holder_public_key(cnf["jwk"])
    except (ValueError, jwt.PyJWTError):
        raise SdJwtRefused("no-key-binding", "cnf.jwk is not a supported public key") from None
    kb_header = _header(compact.kb_jwt, what="KB-JWT")
    if kb_header.get("typ") != KB_TYPE:
        raise SdJwtRefused("wrong-type", f"the KB-JWT's typ is {kb_header.get('typ')!r}, not kb+jwt")
    if kb_header.get("alg") != holder_alg:
        raise SdJwtRefused("wrong-alg", f"the KB-JWT's alg {kb_header.get('alg')!r} is not the holder key's {holder_alg}")
    kb = _jws(compact.kb_jwt, holder_key, holder_alg, what="KB-JWT")
    if kb.get("sd_hash") != sd_hash(compact.issuer_jwt, compact.disclosures):
        raise SdJwtRefused("bad-key-binding", "sd_hash does not match the presented SD-JWT")
    iat = kb.get("iat")
    if not isinstance(iat, int) or iat - leeway > now or iat + kb_max_age + leeway < now:
        raise SdJwtRefused("stale-key-binding", f"the KB-JWT's iat is not within {kb_max_age} s of now")
    if audience is not None and kb.get("aud") != audience:
        raise SdJwtRefused("bad-key-binding", f"the KB-JWT's aud is {kb.get('aud')!r}, not {audience!r}")
    if nonce is not None and kb.get("nonce") != nonce:
        raise SdJwtRefused("bad-key-binding", "the KB-JWT's nonce is not the one asked for")
    disclosed = [name for d in compact.disclosures if (name := _decode_disclosure(d)[1]) is not None]
    return VerifiedSdJwt(header=header, claims=claims, disclosed=disclosed)
