"""Sealed statements are archived once issued and served from the archive after (电子印章, issue 15 §2).

A statement's *content* is everything but `issued_at`. The first request for a content seals it
with the current seal key version, stores the exact JSON bytes (`sealed_statements`), records the
key's public half (`seal_keys`) and writes the document's SHA-256 to the audit archive
(`foundation.audit.write_audit`, action `statement.seal`), all in the request's transaction.
Every later request for the same content gets the archived document back, byte for byte, with
its original `issued_at` and seal; a content that changed (a new redemption, the month turning
final) becomes the next revision. Concurrent first requests are serialised on the statement id
by a transaction-scoped advisory lock, so one content is sealed once.
"""

from __future__ import annotations

import hashlib

import asyncpg
import msgspec

from benefits.redemption import db
from benefits.redemption.seal import CANONICALIZATION, canonical_bytes, seal
from benefits.redemption.types import Seal, SealedStatement, Statement
from foundation.audit import write_audit
from identity.signing import Signer
from merchants import Caller

__all__ = ("published_seal_jwks", "sealed_once")


def content_digest(statement: Statement) -> str:
    content = msgspec.to_builtins(statement)
    content.pop("issued_at", None)
    return hashlib.sha256(canonical_bytes(content)).hexdigest()


async def sealed_once(
    conn: asyncpg.Connection, caller: Caller, statement: Statement, *, key: Signer, jwks_url: str, district: str | None
) -> SealedStatement:
    """The archived seal of this content, or a new one archived now (see the module docstring)."""
    digest_of_content = content_digest(statement)
    async with conn.transaction():
        await db.lock_statement(conn, statement.statement_id)
        archived = await db.archived_statement(conn, statement_id=statement.statement_id, content_digest=digest_of_content)
        if archived is not None:
            return msgspec.json.decode(archived, type=SealedStatement)
        sealed = SealedStatement(
            statement=statement,
            seal=Seal(alg=key.alg, kid=key.kid, jws=seal(key, statement), jwks_url=jwks_url, canonicalization=CANONICALIZATION),
        )
        document = msgspec.json.encode(sealed)
        digest = hashlib.sha256(document).hexdigest()
        await db.record_seal_key(conn, kid=key.kid, alg=key.alg, version=getattr(key, "version", 0), public_jwk=dict(key.public_jwk))
        revision = await db.archive_statement(
            conn, statement_id=statement.statement_id, content_digest=digest_of_content, merchant_id=statement.merchant_id,
            month=statement.month, kid=key.kid, document=document, digest=digest, issued_at=statement.issued_at,
        )
        await write_audit(
            conn, actor_kind=caller.kind, actor_id=str(caller.subject), actor_role=caller.role,
            actor_district=caller.district, action="statement.seal", object_kind="statement",
            object_id=statement.statement_id, district=district,
            detail={"sha256": digest, "kid": key.kid, "alg": key.alg, "revision": revision, "month": statement.month,
                    "final": statement.final},
        )
        return sealed


async def published_seal_jwks(conn: asyncpg.Connection, held: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every seal key to publish: the versions this process holds and every one that ever sealed."""
    keys = {jwk["kid"]: jwk for jwk in held}
    for jwk in await db.seal_key_jwks(conn):
        keys.setdefault(jwk["kid"], jwk)
    return sorted(keys.values(), key=lambda jwk: jwk["kid"])
