"""The offline verifier of an electronic 优待证: cached keys + cached status list, no network.

`check_presentation` runs every step in the order the specs give (RFC 9901 §7, TSL20 §8.3:
the credential itself first, then its status) and answers a `CredentialCheck` that says which
step failed and why. `chongjun credential verify` prints it; a gate or a third party can call it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from identity.credentials.sdjwt import SdJwtRefused, verify_presentation
from identity.credentials.statuslist import STATUS_NAMES, VALID, StatusListRefused, verify_status_list_token
from identity.credentials.types import CredentialCheck
from identity.sm2jws import sm2_from_jwk

__all__ = ("VCT", "check_presentation", "jwks_lookup")

VCT = "urn:cn:sh:tyjrswj:vct:youdaizheng:1"
"""The credential type (SD-JWT VC `vct`): the Shanghai 退役军人事务局's 优待证, version 1."""


def jwks_lookup(jwks: Mapping[str, Any]):
    """kid → (public key, alg) over a JWK Set; the alg is pinned by the JWK, never by the token."""
    keys: dict[str, tuple[Any, str]] = {}
    for jwk in jwks.get("keys", []) if isinstance(jwks, Mapping) else []:
        if not isinstance(jwk, Mapping) or "kid" not in jwk:
            continue
        text = json.dumps({k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk})
        try:
            if jwk.get("alg") == "EdDSA" and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                keys[jwk["kid"]] = (OKPAlgorithm.from_jwk(text), "EdDSA")
            elif jwk.get("alg") == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                keys[jwk["kid"]] = (ECAlgorithm.from_jwk(text), "ES256")
            elif jwk.get("alg") == "SM2" and jwk.get("kty") == "EC" and jwk.get("crv") == "SM2":
                # The gm crypto profile's issuer keys (identity.sm2jws: SM2 with SM3, r ‖ s).
                keys[jwk["kid"]] = (sm2_from_jwk(text), "SM2")
        except Exception:  # a malformed key in the set is skipped, the others still count
            continue
    return keys.get


def check_presentation(
    presentation: str,
    *,
    jwks: Mapping[str, Any],
    status_list_token: str | None,
    now: float,
    audience: str | None = None,
    nonce: str | None = None,
    kb_max_age: int = 300,
) -> CredentialCheck:
    lookup = jwks_lookup(jwks)
    try:
        verified = verify_presentation(presentation, issuer_key=lookup, now=now, audience=audience, nonce=nonce, kb_max_age=kb_max_age)
    except SdJwtRefused as refused:
        return CredentialCheck(ok=False, reason=refused.reason, detail=refused.detail)
    claims = verified.claims
    if claims.get("vct") != VCT:
        return CredentialCheck(ok=False, reason="wrong-vct", detail=f"vct is {claims.get('vct')!r}, not {VCT}")
    reference = (claims.get("status") or {}).get("status_list") if isinstance(claims.get("status"), dict) else None
    if not isinstance(reference, dict) or not isinstance(reference.get("uri"), str):
        return CredentialCheck(ok=False, reason="no-status", detail="the credential names no status list")
    if status_list_token is None:
        return CredentialCheck(ok=False, reason="no-status-list", detail=f"no cached status list for {reference['uri']}")
    try:
        status_list, _ = verify_status_list_token(status_list_token.strip(), key_for=lookup, uri=reference["uri"], now=now)
        status = status_list.get(reference.get("idx"))
    except StatusListRefused as refused:
        return CredentialCheck(ok=False, reason=refused.reason, detail=refused.detail)
    name = STATUS_NAMES.get(status, f"0x{status:02x}")
    if status != VALID:
        return CredentialCheck(
            ok=False, reason=name, status=name,
            detail=f"the status list marks entry {reference['idx']} as {name}",
        )
    shown = {k: v for k, v in claims.items() if k not in ("cnf", "status")}
    return CredentialCheck(ok=True, status=name, claims=shown)
