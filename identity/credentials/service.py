"""Rules of the electronic 优待证: who gets one, what it discloses, how its status is published.

- Only an enrolled person whose card is ACTIVE gets a credential (403 `credential-refused`
  otherwise); it is bound to the public key the veteran's app sends (`cnf.jwk`).
- Selectively disclosable: `category` (labels), `name` (masked), `district`, `card_kind`,
  `valid_until`. Never the ID number, never the person id (no `sub`, so two presentations are
  not linked by it). Always visible (RFC 9901 §9.7, VC18 §2.2.2.3): iss, iat, exp, vct, cnf,
  status.
- Signed by the app's key ring (the active EdDSA key, published in /.well-known/jwks.json).
- The status list is derived when served from the card (SUSPENDED → 2 suspended; REVOKED or
  REPLACED → 1 invalid) and the credential's own revocation, so a roster import that suspends
  a card suspends the credential in the very next list served; the list token's `ttl` (60 s)
  tells verifiers to refresh within a minute.
"""

from __future__ import annotations

import hashlib
import secrets as random
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from foundation.audit import write_audit
from foundation.vocabulary import CARD_KINDS, CATEGORIES, SHANGHAI_DISTRICTS
from identity.credentials import db
from identity.credentials.errors import CredentialRefused, InvalidHolderKey, StatusListNotFound
from identity.credentials.sdjwt import holder_public_key, issue_sd_jwt
from identity.credentials.statuslist import encode_status_list, sign_status_list
from identity.credentials.types import IssuedCredential
from identity.credentials.verify import VCT
from identity.keys import KeyRing, jwk_thumbprint
from identity.people import PersonNotFound, get_person

__all__ = (
    "CREDENTIAL_DAYS",
    "STATUS_BITS",
    "STATUS_LIST_EXP",
    "STATUS_LIST_ID",
    "STATUS_LIST_SIZE",
    "STATUS_LIST_TTL",
    "issue_credential",
    "revoke_person_credentials",
    "status_list_token",
    "status_list_uri",
)

CREDENTIAL_DAYS = 365
STATUS_LIST_ID = 1
STATUS_LIST_SIZE = 1 << 17  # 131,072 entries, 32 KiB before compression; indices drawn at random
STATUS_BITS = 2
STATUS_LIST_TTL = 60
"""Seconds a verifier may cache a status list while online (TSL20 `ttl`)."""
STATUS_LIST_EXP = 24 * 3600
"""Seconds a downloaded list stays usable offline (its `exp`); after that it is refused."""
SHANGHAI = ZoneInfo("Asia/Shanghai")


def status_list_uri(base_url: str, list_id: int = STATUS_LIST_ID) -> str:
    return f"{base_url.rstrip('/')}/v1/status-lists/{list_id}"


async def issue_credential(
    conn: asyncpg.Connection,
    person_id: UUID,
    holder_jwk: dict[str, Any],
    *,
    keyring: KeyRing,
    base_url: str,
    now: datetime | None = None,
) -> IssuedCredential:
    try:
        holder_public_key(holder_jwk)
    except Exception:
        raise InvalidHolderKey("holder_jwk must be a public Ed25519 (OKP) or P-256 (EC) JWK") from None
    person = await get_person(conn, person_id)
    if person is None:
        raise PersonNotFound()
    if person.card_status != "ACTIVE":
        raise CredentialRefused("Your preferential card is not active, so no credential is issued")
    key = keyring.active
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    expires = now + timedelta(days=CREDENTIAL_DAYS)
    cnf = {k: holder_jwk[k] for k in ("kty", "crv", "x", "y") if k in holder_jwk}
    thumbprint = jwk_thumbprint(cnf)
    for _ in range(16):
        idx = random.randbelow(STATUS_LIST_SIZE)
        row = await db.insert_credential(
            conn, person_id=person.id, status_list=STATUS_LIST_ID, status_idx=idx, vct=VCT, kid=key.kid,
            holder_thumbprint=thumbprint, issued_at=now, expires_at=expires,
        )
        if row is not None:
            break
    else:  # pragma: no cover - a list 16 draws in a row found full: time for list 2
        raise RuntimeError("the status list has no free index")
    uri = status_list_uri(base_url)
    claims = {
        "iss": base_url.rstrip("/"),
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "vct": VCT,
        "cnf": {"jwk": cnf},
        "status": {"status_list": {"idx": idx, "uri": uri}},
    }
    disclosable = {
        "category": [CATEGORIES[c][0] for c in sorted(person.categories) if c in CATEGORIES],
        "name": person.name_masked,
        "district": SHANGHAI_DISTRICTS.get(person.district or "", (person.district or "", ""))[0] or None,
        "card_kind": CARD_KINDS[person.card_kind][0],
        "valid_until": expires.astimezone(SHANGHAI).date().isoformat(),
    }
    credential, _ = issue_sd_jwt(claims=claims, disclosable=disclosable, private_key=key.private_key, alg=key.alg, kid=key.kid)
    await write_audit(
        conn, actor_kind="veteran", actor_id=str(person.id), action="credential.issue", object_kind="credential",
        object_id=str(row["id"]), district=person.district,
        detail={"status_list": STATUS_LIST_ID, "status_idx": idx, "kid": key.kid, "vct": VCT,
                "digest": hashlib.sha256(credential.encode()).hexdigest()},
    )
    return IssuedCredential(
        credential=credential, format="dc+sd-jwt", vct=VCT, expires_at=expires, status_list_uri=uri,
        status_idx=idx, disclosable=sorted(disclosable),
    )


async def status_list_token(conn: asyncpg.Connection, list_id: int, *, keyring: KeyRing, base_url: str, now: float | None = None) -> str:
    """The signed Status List Token of one list, as it stands in PostgreSQL now."""
    if list_id != STATUS_LIST_ID:
        raise StatusListNotFound()
    rows = await db.list_statuses(conn, status_list=list_id)
    encoded = encode_status_list({r["status_idx"]: r["status"] for r in rows}, bits=STATUS_BITS, size=STATUS_LIST_SIZE)
    key = keyring.active
    iat = int(now if now is not None else time.time())
    return sign_status_list(
        encoded, uri=status_list_uri(base_url, list_id), private_key=key.private_key, alg=key.alg, kid=key.kid,
        iat=iat, exp=iat + STATUS_LIST_EXP, ttl=STATUS_LIST_TTL,
    )


async def revoke_person_credentials(conn: asyncpg.Connection, person_id: UUID, *, actor_kind: str, actor_id: str) -> int:
    """Revoke (status INVALID, for good) every credential of a person; returns how many."""
    count = await db.revoke_person_credentials(conn, person_id)
    if count:
        await write_audit(conn, actor_kind=actor_kind, actor_id=actor_id, action="credential.revoke",
                          object_kind="person", object_id=str(person_id), detail={"count": count})
    return count
