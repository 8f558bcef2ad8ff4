"""The scan pipeline: code → person → benefit → rules → one atomic ledger statement.

PostgreSQL decides: single use, every cap and the stored Idempotency-Key answer are written by
one statement (`record_redemption`), so "accepted" is only said after that commit. Redis only
speeds things up (replay pre-check, rate limit, in-flight marker); when it is down every check
still happens in PostgreSQL and scans go on.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import date, datetime, timezone
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

import identity
import merchants
from benefits import (
    benefits_at_venue,
    companions_allowed,
    evaluate,
    forget_person_benefits,
    get_benefit,
    local_date,
    period_key,
    window_open,
)
from benefits.redemption import db
from benefits.redemption.errors import (
    AlreadyReversed,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    RedemptionNotFound,
    ReversalWindowClosed,
    ScanRateLimited,
    VenueNotAllowed,
)
from benefits.redemption.reasons import MESSAGES
from benefits.redemption.types import BenefitRef, Holder, ReversalResult, ScanDecision, ScanRequest
from chongjun.errors import BadRequest
from chongjun.vocabulary import CATEGORIES, VETERAN_SUBKINDS

__all__ = ("reverse", "scan")

log = logging.getLogger("chongjun.scan")
_encode = msgspec.json.Encoder().encode

# The label a gate shows: the most specific identity first.
_LABEL_ORDER = (
    "DISABLED_SERVICEMAN", "MARTYR_FAMILY", "DUTY_DEATH_FAMILY", "ILLNESS_DEATH_FAMILY", "ACTIVE_SERVICE",
    "COMBAT_VETERAN", "NUCLEAR_TEST_VETERAN", "RETIRED_CADRE", "VETERAN", *sorted(VETERAN_SUBKINDS),
    "MARTYR_ELDERLY_CHILD", "SERVICE_FAMILY", "FIREFIGHTER",
)
_ELDERLY_AGE = 60
_REPLAY_TTL = 180  # seconds: longer than a code's life plus the clock leeway


def _caller(principal) -> tuple[str, UUID | None, UUID | None]:
    if principal.kind == "device":
        return f"device:{principal.subject}", principal.subject, None
    return f"staff:{principal.subject}", None, principal.subject


def _label(person) -> str:
    for code in _LABEL_ORDER:
        if code in person.categories:
            return CATEGORIES[code][0]
    return "优抚对象"


def _priority(person, today: date) -> bool:
    """为老服务绿色通道: elderly holders and grade 1–4 disabled holders go first."""
    if person.disability_grade is not None and person.disability_grade <= 4:
        return True
    born = person.birth_date
    if born is None:
        return False
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return age >= _ELDERLY_AGE


def _ref(version) -> BenefitRef:
    return BenefitRef(id=version.benefit_id, code=version.code, name_zh=version.name_zh, name_en=version.name_en)


def _decision(reason: str, **fields) -> ScanDecision:
    zh, en = MESSAGES[reason]
    return ScanDecision(
        decision="accepted" if reason == "accepted" else "rejected", reason=reason, message=zh, message_en=en, **fields
    )


async def _rate_limit(redis: aioredis.Redis, caller: str, per_minute: int) -> None:
    if per_minute <= 0:
        return
    window = int(time.time() // 60)
    key = f"cj:rate:{{{caller}}}:{window}"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            count, _ = await pipe.incr(key).expire(key, 120).execute()
    except RedisError:
        return  # fail open: a rate limit is no guard of correctness (README: Redis down)
    if count > per_minute:
        raise ScanRateLimited(f"at most {per_minute} scans a minute per device", retry_after=60 - int(time.time() % 60))


async def _seen_consumed(redis: aioredis.Redis, jti: str) -> bool:
    try:
        return bool(await redis.exists(f"cj:used:{{{jti}}}"))
    except RedisError:
        return False


async def _remember_consumed(redis: aioredis.Redis, jti: str, person_id: UUID) -> None:
    try:
        await redis.set(f"cj:used:{{{jti}}}", 1, ex=_REPLAY_TTL)
        await forget_person_benefits(redis, person_id)
    except RedisError:
        log.warning("redis unavailable after an accepted scan; caches refill from PostgreSQL")


async def _stored(conn, caller: str, key: str, fingerprint: bytes) -> bytes | None:
    row = await db.get_stored_answer(conn, caller=caller, key=key)
    if row is None:
        return None
    if bytes(row["fingerprint"]) != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was first used with another body")
    return bytes(row["response"])


async def scan(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    principal,
    request: ScanRequest,
    *,
    idempotency_key: str | None,
    scan_rate: int,
) -> bytes:
    """Decide one scan and return the JSON answer (the stored first one for a repeated key).

    `conn` must not be inside a transaction: each write below is one atomic statement.
    """
    caller, device_id, staff_id = _caller(principal)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255 and idempotency_key.isprintable()):
        raise BadRequest("Idempotency-Key must be 1-255 printable characters")
    # The decoded request, re-encoded: the same scan sent with other spacing is the same request.
    fingerprint = hashlib.sha256(_encode(request)).digest()
    if idempotency_key is not None:
        if (answer := await _stored(conn, caller, idempotency_key, fingerprint)) is not None:
            return answer
        try:
            fresh = await redis.set(f"cj:idem:{{{caller}}}:{idempotency_key}", 1, nx=True, ex=30)
        except RedisError:
            fresh = True  # PostgreSQL's unique key still makes the first answer win
        if not fresh:
            raise IdempotencyKeyInFlight("a scan with this Idempotency-Key is still being processed")
    await _rate_limit(redis, caller, scan_rate)

    venue = await merchants.find_venue(conn, request.venue_id)
    if venue is None or (principal.kind == "device" and principal.venue_id != venue.id) or (
        principal.kind == "staff" and principal.merchant_id != venue.merchant_id
    ):
        raise VenueNotAllowed("this scanner is not bound to that venue")

    now = datetime.now(timezone.utc)
    today = local_date(now)
    context = _ScanContext(
        request=request, venue=venue, caller=caller, device_id=device_id, staff_id=staff_id,
        key=idempotency_key, fingerprint=fingerprint, today=today,
    )
    return await _decide(conn, redis, context, now)


class _ScanContext(msgspec.Struct):
    request: ScanRequest
    venue: merchants.Venue
    caller: str
    device_id: UUID | None
    staff_id: UUID | None
    key: str | None
    fingerprint: bytes
    today: date
    person_id: UUID | None = None
    benefit_id: UUID | None = None


async def _reject(conn, ctx: _ScanContext, reason: str, **fields) -> bytes:
    answer = _encode(_decision(reason, **fields))
    stored_first = await db.record_rejection(
        conn, uuid.uuid4(), ctx.today, reason, ctx.venue.id, ctx.venue.merchant_id, ctx.device_id, ctx.staff_id,
        ctx.person_id, ctx.benefit_id, ctx.caller, ctx.key, ctx.fingerprint, answer,
    )
    if not stored_first:
        return await _stored(conn, ctx.caller, ctx.key, ctx.fingerprint)
    return answer


async def _decide(conn, redis, ctx: _ScanContext, now: datetime) -> bytes:
    request = ctx.request
    try:
        holder = await identity.resolve_scan_code(request.code, redis=redis, conn=conn, now=now)
    except identity.ExpiredCode:
        return await _reject(conn, ctx, "expired")
    except identity.NotEnrolled:
        return await _reject(conn, ctx, "not_enrolled")
    except identity.InvalidCode:
        return await _reject(conn, ctx, "invalid_code")
    if await _seen_consumed(redis, holder.jti):
        return await _reject(conn, ctx, "replayed")
    person = await identity.get_person(conn, holder.person_id)
    if person is None:
        return await _reject(conn, ctx, "not_enrolled")
    ctx.person_id = person.id
    shown = Holder(name_masked=person.name_masked, category_label=_label(person))
    priority = _priority(person, ctx.today)
    if person.card_status != "ACTIVE":
        return await _reject(conn, ctx, "card_suspended", holder=shown)

    offered = {v.benefit_id: v for v in await benefits_at_venue(conn, ctx.venue.id)}
    wanted = request.benefit_id or holder.benefit_id
    if wanted is None:
        usable = [v for v in offered.values() if v.is_active and evaluate(v, person, now).eligible]
        if not usable:
            return await _reject(conn, ctx, "not_eligible", holder=shown, priority=priority)
        if len(usable) > 1:
            choices = sorted((_ref(v) for v in usable), key=lambda r: r.code)
            return await _reject(conn, ctx, "choose_benefit", holder=shown, priority=priority, choices=choices)
        version = usable[0]
    else:
        version = offered.get(wanted) or await get_benefit(conn, wanted)
        if version is None or not version.is_active:
            ctx.benefit_id = version.benefit_id if version else None
            return await _reject(conn, ctx, "benefit_inactive", holder=shown, priority=priority)
        if version.benefit_id not in offered:
            ctx.benefit_id = version.benefit_id
            return await _reject(conn, ctx, "wrong_venue", holder=shown, priority=priority, benefit=_ref(version))
    ctx.benefit_id = version.benefit_id
    ref = _ref(version)
    if not window_open(version, now):
        return await _reject(conn, ctx, "outside_window", holder=shown, priority=priority, benefit=ref)
    verdict = evaluate(version, person, now)
    if not verdict.eligible:
        return await _reject(conn, ctx, "not_eligible", holder=shown, priority=priority, benefit=ref)
    allowed = companions_allowed(version, person, now)
    if request.companions > allowed:
        return await _reject(
            conn, ctx, "too_many_companions", holder=shown, priority=priority, benefit=ref, companions_allowed=allowed
        )

    redemption_id = uuid.uuid4()
    answer = _encode(
        _decision(
            "accepted", redemption_id=redemption_id, holder=shown, benefit=ref, priority=priority,
            companions_allowed=allowed, companions=request.companions,
        )
    )
    caps = [(period_key(cap.period, now), cap.max) for cap in version.caps]
    capacities = [c for c in (ctx.venue.daily_capacity, version.venue_daily_capacity) if c is not None]
    value = verdict.value or version.value
    outcome = await db.record_redemption(
        conn, redemption_id, holder.jti, "cj" if holder.source == "cj_code" else "suishen", ctx.today,
        person.id, version.benefit_id, version.version, version.code, ctx.venue.id, ctx.venue.merchant_id,
        ctx.device_id, ctx.staff_id, request.companions, value.__struct_config__.tag, getattr(value, "amount_fen", None) or 0,
        priority, [k for k, _ in caps], [m for _, m in caps], min(capacities) if capacities else None,
        ctx.caller, ctx.key, ctx.fingerprint, answer,
    )
    if outcome == "accepted":
        await _remember_consumed(redis, holder.jti, person.id)
        log.info("scan accepted", extra={"fields": {"redemption_id": str(redemption_id), "benefit": version.code}})
        return answer
    if outcome == "idempotency_conflict":
        return await _stored(conn, ctx.caller, ctx.key, ctx.fingerprint)
    return await _reject(conn, ctx, outcome, holder=shown, priority=priority, benefit=ref, companions_allowed=allowed)


async def reverse(
    conn: asyncpg.Connection, redis: aioredis.Redis, principal, redemption_id: UUID, reason: str, *, window_seconds: int
) -> ReversalResult:
    """Reverse an accepted scan of the caller's venue (device) or merchant (staff) within the window."""
    original = await db.get_redemption(conn, redemption_id)
    if original is None or (
        principal.kind == "device" and principal.venue_id != original["venue_id"]
    ) or (principal.kind == "staff" and principal.merchant_id != original["merchant_id"]):
        raise RedemptionNotFound("no such redemption at your venue")
    if original["reversed"]:
        raise AlreadyReversed("this redemption was already reversed")
    now = datetime.now(timezone.utc)
    if (now - original["at"]).total_seconds() > window_seconds:
        raise ReversalWindowClosed(f"reversals are possible for {window_seconds // 60} minutes after the scan")
    _, device_id, staff_id = _caller(principal)
    row = await db.insert_reversal(
        conn, reversal_id=uuid.uuid4(), original=original, service_day=local_date(now),
        device_id=device_id, staff_id=staff_id, reason=reason,
    )
    if row is None:
        raise AlreadyReversed("this redemption was already reversed")
    await db.give_back_quota(conn, original)
    try:
        await forget_person_benefits(redis, original["person_id"])
    except RedisError:
        pass
    return ReversalResult(reversal_id=row["id"], redemption_id=redemption_id, reversed_at=row["at"])
