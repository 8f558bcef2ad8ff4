"""Gates that keep working offline (issue 15 §4): the signed bundle a gate decides from while the
network is gone, and the reconciliation of what it decided when the network returns.

The bundle (`offline_bundle`, `typ` cj-offline-bundle+jwt, signed by the key ring like the trust
list) holds the keys a 崇军码 is signed with, the credential status list, the venue's benefits
with a digest of their rules, and the offline budget. With it the gate checks a code's signature
and time itself and keeps its own counts; it cannot check eligibility or caps (it does not know
who the holder is, only the code's pseudonym `sub`), so those are decided here, on upload.

`reconcile` takes each uploaded decision once per (device, local_id), in its own transaction
under the device's lock, and answers:

- `recorded`: the ledger row, written by the one ledger statement (`db.record_offline_redemption`)
  with the decision time, its service day and cap buckets; the item's row in the same statement;
- `conflict`: the gate let the holder in, but the code was used already, a cap or capacity was
  reached, or the gate went past its offline budget: kept with its reason, never counted;
- `rejected`: the item is invalid (forged or expired code at its decision time, not enrolled,
  suspended card, not eligible, wrong venue, ...): kept with its reason.

A re-upload answers from the stored rows and writes nothing. A suspended card is only seen on
upload (the 崇军码 carries no status): the decision is `rejected` (`card_suspended`).
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

import identity
import merchants
from benefits.catalog import BenefitVersion, benefits_at_venue, forget_person_benefits, get_benefit, local_date, period_key
from benefits.redemption import db
from benefits.redemption.errors import DuplicateLocalId, VenueNotAllowed
from benefits.redemption.reasons import MESSAGES
from benefits.redemption.service import Offer, Refuse, decide, green_channel
from benefits.redemption.types import (
    LedgerEntry,
    OfflineBenefit,
    OfflineBudget,
    OfflineBundle,
    OfflineItemResult,
    OfflineRecord,
    OfflineResults,
    OfflineScan,
    OfflineUpload,
    StoredAnswer,
)
from foundation.ids import random_uuid
from foundation.settings import Settings
from identity.credentials import STATUS_LIST_ID, status_list_token

__all__ = ("OFFLINE_BUNDLE_TYPE", "offline_budget", "offline_bundle", "reconcile", "rules_digest")

OFFLINE_BUNDLE_TYPE = "cj-offline-bundle+jwt"
FUTURE_LEEWAY = timedelta(seconds=60)
"""A decision time this far ahead of our clock is still taken (the gate's clock may run fast)."""
_CONFLICTS = frozenset({"replayed", "quota_exhausted", "venue_capacity_reached", "offline_budget_exceeded"})
_canonical = msgspec.json.Encoder(order="sorted").encode


def offline_budget(settings: Settings) -> OfflineBudget:
    return OfflineBudget(
        accepts_per_hour=settings.offline_accepts_per_hour, accepts_per_person_day=settings.offline_accepts_per_person_day,
        valid_seconds=settings.offline_bundle_seconds, upload_within_seconds=settings.offline_upload_seconds,
    )


def rules_digest(version: BenefitVersion) -> str:
    """SHA-256 (hex) of a benefit version's definition, canonical (sorted keys, no whitespace)."""
    return hashlib.sha256(_canonical(version.spec())).hexdigest()


async def offline_bundle(
    conn: asyncpg.Connection, principal: identity.Principal, *, keyring: identity.KeyRing, settings: Settings,
    base_url: str, now: float | None = None,
) -> str:
    """The signed offline bundle of the calling device's venue (a compact JWS)."""
    venue = await merchants.find_venue(conn, principal.venue_id) if principal.venue_id else None
    if venue is None or venue.status != "active":
        raise VenueNotAllowed("this device's venue is not active")
    iat = int(time.time() if now is None else now)
    offered = [
        OfflineBenefit(
            id=v.benefit_id, code=v.code, version=v.version, name_zh=v.name_zh, name_en=v.name_en,
            companions_max=v.companions.max if v.companions else 0, caps=[msgspec.to_builtins(c) for c in v.caps],
            rules_digest=rules_digest(v),
        )
        for v in await benefits_at_venue(conn, venue.id)
    ]
    budget = offline_budget(settings)
    bundle = OfflineBundle(
        iss=base_url.rstrip("/"), iat=iat, exp=iat + budget.valid_seconds, device_id=principal.subject,
        venue_id=venue.id, venue_name=venue.name_zh,
        code_keys=keyring.jwks(),
        status_list=await status_list_token(conn, STATUS_LIST_ID, keyring=keyring, base_url=base_url, now=iat),
        benefits=offered,
        rules_digest=hashlib.sha256("".join(b.rules_digest for b in offered).encode()).hexdigest(),
        budget=budget,
    )
    return identity.sign_document(keyring, msgspec.to_builtins(bundle), typ=OFFLINE_BUNDLE_TYPE)


# --- reconciliation --------------------------------------------------------------------------------


async def reconcile(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    principal: identity.Principal,
    upload: OfflineUpload,
    *,
    keyring: identity.KeyRing,
    settings: Settings,
    now: datetime | None = None,
) -> OfflineResults:
    """Reconcile a device's offline decisions, each once (see the module docstring). `conn` is
    outside a transaction: every item commits on its own, so a retry after a failure part-way
    answers the committed ones from their rows and goes on with the rest."""
    seen: set[str] = set()
    for item in upload.scans:
        if item.local_id in seen:
            raise DuplicateLocalId(f"local_id {item.local_id!r} appears twice in this batch")
        seen.add(item.local_id)
    venue = await merchants.find_venue(conn, principal.venue_id) if principal.venue_id else None
    if venue is None:
        raise VenueNotAllowed("this device's venue does not exist")
    budget = offline_budget(settings)
    # The venue's offer is read once for the whole upload (up to 200 items), not once an item: the
    # ledger statement re-checks each benefit version, so one changed meanwhile is refused as stale.
    offered = {v.benefit_id: v for v in await benefits_at_venue(conn, venue.id)}
    results = []
    for item in upload.scans:
        result, person_id = await _reconcile_one(conn, principal, venue, offered, item, keyring=keyring, budget=budget,
                                                 now=now or datetime.now(timezone.utc))
        results.append(result)
        if result.outcome == "recorded" and person_id is not None:
            try:
                await forget_person_benefits(redis, person_id)  # the remaining quota the person sees
            except RedisError:
                pass  # the cached list expires by itself (≤ 10 min)
    return OfflineResults(
        items=results,
        recorded=sum(r.outcome == "recorded" for r in results),
        conflicts=sum(r.outcome == "conflict" for r in results),
        rejected=sum(r.outcome == "rejected" for r in results),
    )


def _result(local_id: str, outcome: str, reason: str, redemption_id: UUID | None = None) -> OfflineItemResult:
    zh, en = MESSAGES[reason]
    return OfflineItemResult(local_id=local_id, outcome=outcome, reason=reason, message=zh, message_en=en,  # type: ignore[arg-type]
                             redemption_id=redemption_id)


async def _reconcile_one(
    conn: asyncpg.Connection, principal: identity.Principal, venue: merchants.Venue,
    offered: dict[UUID, BenefitVersion], item: OfflineScan, *,
    keyring: identity.KeyRing, budget: OfflineBudget, now: datetime,
) -> tuple[OfflineItemResult, UUID | None]:
    device_id = principal.subject
    fingerprint = hashlib.sha256(_canonical(item)).digest()
    async with conn.transaction():
        await db.lock_offline_device(conn, device_id)
        stored = await db.offline_scan(conn, device_id=device_id, local_id=item.local_id)
        if stored is not None:
            if bytes(stored["fingerprint"]) != fingerprint:
                return _result(item.local_id, "rejected", "local_id_reused"), None
            return _result(item.local_id, stored["outcome"], stored["reason"], stored["redemption_id"]), None
        in_range = now - timedelta(seconds=budget.upload_within_seconds) <= item.decided_at <= now + FUTURE_LEEWAY
        kept = OfflineRecord(
            id=random_uuid(), device_id=device_id, local_id=item.local_id, fingerprint=fingerprint, outcome="rejected",
            reason="invalid_code", redemption_id=None, venue_id=venue.id, merchant_id=venue.merchant_id,
            # a decision time out of range is refused and kept as the upload's time (year 9999 or year 1
            # in another zone has no Shanghai day, nor a PostgreSQL one)
            benefit_id=item.benefit_id, person_id=None, companions=item.companions,
            decided_at=item.decided_at if in_range else now, service_day=local_date(item.decided_at if in_range else now),
        )
        decided = await _judge(conn, item, venue, offered, kept, in_range=in_range, keyring=keyring, budget=budget)
        if decided.outcome != "recorded":  # the ledger statement wrote a recorded item's row already
            await db.insert_offline_scan(conn, decided)
    result = _result(item.local_id, decided.outcome, decided.reason, decided.redemption_id)
    return result, decided.person_id if decided.outcome == "recorded" else None


async def _judge(
    conn: asyncpg.Connection, item: OfflineScan, venue: merchants.Venue, offered: dict[UUID, BenefitVersion],
    kept: OfflineRecord, *, in_range: bool,
    keyring: identity.KeyRing, budget: OfflineBudget,
) -> OfflineRecord:
    """The guard clauses of one item, in order, down to the ledger statement: the item's
    `offline_scans` row, recorded (written with the ledger row) or a conflict or rejection to keep."""

    def refuse(reason: str, **fields) -> OfflineRecord:
        outcome = "conflict" if reason in _CONFLICTS else "rejected"
        return msgspec.structs.replace(kept, outcome=outcome, reason=reason, **fields)

    if item.venue_id != venue.id:
        return refuse("venue_not_allowed")
    at = item.decided_at
    if not in_range:  # in the future, or older than the upload window
        return refuse("bad_decision_time")
    if not item.code.startswith(identity.CODE_PREFIX):
        return refuse("offline_code_unsupported")
    try:  # valid at the moment the gate decided, not now
        code = identity.verify_code(item.code, keyring=keyring, now=at.timestamp())
    except identity.ExpiredCode:
        return refuse("expired")
    except identity.InvalidCode:
        return refuse("invalid_code")
    person = await identity.get_person(conn, code.person_id)
    if person is None:
        return refuse("not_enrolled")
    kept = msgspec.structs.replace(kept, person_id=person.id)
    if person.card_status != "ACTIVE":
        return refuse("card_suspended", person_id=person.id)
    wanted = item.benefit_id or code.benefit_id
    named = (offered.get(wanted) or await get_benefit(conn, wanted)) if wanted is not None else None
    verdict = decide(wanted, item.companions, person, Offer(offered, named=named), at)
    if isinstance(verdict, Refuse):
        return refuse(verdict.reason, person_id=person.id, benefit_id=verdict.benefit_id or kept.benefit_id)
    version = verdict.benefit
    kept = msgspec.structs.replace(kept, person_id=person.id, benefit_id=version.benefit_id)
    if await db.code_consumed(conn, code.jti, expires_at=code.expires_at):  # said as such, before the budget (the statement decides anyway)
        return refuse("replayed", person_id=person.id, benefit_id=version.benefit_id)
    hour = at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    used = await db.offline_budget_used(conn, device_id=kept.device_id, hour_start=hour, person_id=person.id,
                                        service_day=kept.service_day)
    if used["hour"] >= budget.accepts_per_hour or used["person_day"] >= budget.accepts_per_person_day:
        return refuse("offline_budget_exceeded", person_id=person.id, benefit_id=version.benefit_id)
    redemption_id = random_uuid()
    caps = [(period_key(cap.period, at), cap.max) for cap in version.caps]
    entry = LedgerEntry(
        id=redemption_id, jti=code.jti, code_expires_at=code.expires_at, code_source="cj", service_day=kept.service_day, person_id=person.id,
        benefit_id=version.benefit_id, benefit_version=version.version, benefit_code=version.code, venue_id=venue.id,
        merchant_id=venue.merchant_id, device_id=kept.device_id, staff_id=None, companions=item.companions,
        value_kind=verdict.value.__struct_config__.tag,  # type: ignore[arg-type]
        value_fen=getattr(verdict.value, "amount_fen", None) or 0, priority=green_channel(person, kept.service_day),
        period_keys=[k for k, _ in caps], period_caps=[m for _, m in caps], venue_capacity=version.venue_daily_capacity,
        answer=StoredAnswer(caller=f"device:{kept.device_id}", key=None, fingerprint=kept.fingerprint, response=b""),
    )
    outcome = await db.record_offline_redemption(conn, entry=entry, kept=kept)
    if outcome == "accepted":
        return msgspec.structs.replace(kept, outcome="recorded", reason="accepted", redemption_id=redemption_id)
    if outcome == "stale_benefit":  # changed between our read and the statement: not in force as decided
        outcome = "benefit_inactive"
    return refuse(outcome)
