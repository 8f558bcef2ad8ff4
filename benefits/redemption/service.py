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
from datetime import date, datetime, timedelta, timezone
from uuid import UUID

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

import identity
import merchants
from benefits.catalog import (
    benefits_at_venue,
    companions_allowed,
    evaluate,
    forget_person_benefits,
    get_benefit,
    local_date,
    period_key,
    person_stale_mark,
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
from foundation.cache import LocalCache
from foundation.errors import BadRequest
from foundation.vocabulary import CATEGORIES, VETERAN_SUBKINDS

__all__ = ("IDEMPOTENCY_MIN_AGE", "prune_idempotency_keys", "reverse", "scan")

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


_venues: LocalCache[UUID, merchants.Venue | None] = LocalCache(maxsize=10_000, ttl=5.0)
"""Venues of scans. Only who may scan there is decided from it; the ledger statement reads the
venue's capacity and status itself (migration 0043)."""


async def _venue(conn, venue_id: UUID, *, fresh: bool = False) -> merchants.Venue | None:
    """The venue of a scan, from a short in-process cache: every scan at a gate names the same one."""
    return await _venues.get_or_load(venue_id, lambda: merchants.find_venue(conn, venue_id), fresh=fresh)


class _Gate(msgspec.Struct):
    """What one Redis round trip before the decision tells: Idempotency-Key, rate and replay."""

    key_fresh: bool = True
    scans_this_minute: int = 0
    seen_consumed: bool = False


# The checks before a decision, in one Redis round trip. KEYS: the Idempotency-Key marker, the
# device's rate window, the code's replay marker (a placeholder when unused). ARGV: this request's
# token, then "1"/"0" for: a key was sent, the rate limit is on, a code was verified.
# The marker holds the request's token: if the script is re-sent after a lost reply, the SET NX
# that already ran fails, but the marker still names this request, so it is not "in flight".
_GATE = """
local fresh = 1
if ARGV[2] == '1' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', 30) then
    fresh = redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
end
local count = 0
if ARGV[3] == '1' then
    count = redis.call('INCR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], 120)
end
local seen = 0
if ARGV[4] == '1' then
    seen = redis.call('EXISTS', KEYS[3])
end
return {fresh, count, seen}
"""

# After an accepted scan: remember the code for the replay pre-check and make the person's
# cached benefit list stale (benefits.person_stale_mark). KEYS: replay marker, generation key,
# cached list. ARGV: replay TTL, the new generation, its TTL.
_ACCEPTED = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('DEL', KEYS[3])
return 1
"""

# Scripts keep the scan to one command per round trip (a pipeline of several costs the worker
# twice the CPU in redis-py). They name keys of several hash slots: a single Redis server (or a
# primary with replicas), not a Redis Cluster.
_SHA = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_GATE, _ACCEPTED)}


async def _run(redis: aioredis.Redis, script: str, keys: list[str], args: list) -> object:
    try:
        return await redis.evalsha(_SHA[script], len(keys), *keys, *args)
    except NoScriptError:  # a restarted Redis: send the script itself, which loads it again
        return await redis.eval(script, len(keys), *keys, *args)


def _used_key(jti: str) -> str:
    return f"cj:used:{{{jti}}}"


async def _ask_redis(
    redis: aioredis.Redis, caller: str, key: str | None, token: str, jti: str | None, per_minute: int
) -> _Gate:
    """The three fast checks in one round trip. Redis down → the key's first answer still wins
    in PostgreSQL, single use is still `consumed_codes`' primary key, and the rate is counted in
    this process instead (so a device gets at most the rate per worker while Redis is away)."""
    keys = [
        _marker_key(caller, key) if key is not None else "cj:unused",
        f"cj:rate:{{{caller}}}:{int(time.time() // 60)}",
        _used_key(jti) if jti is not None else "cj:unused",
    ]
    flags = ["1" if on else "0" for on in (key is not None, per_minute > 0, jti is not None)]
    try:
        fresh, count, seen = await _run(redis, _GATE, keys, [token, *flags])
    except RedisError:
        return _Gate(scans_this_minute=_count_locally(caller) if per_minute > 0 else 0)
    return _Gate(key_fresh=bool(fresh), scans_this_minute=int(count), seen_consumed=bool(seen))


_local_rate: LocalCache[str, tuple[int, int]] = LocalCache(maxsize=50_000, ttl=120.0)
"""caller -> (minute, scans this process counted in it): the rate limit while Redis cannot count."""


def _count_locally(caller: str) -> int:
    minute = int(time.time() // 60)
    counted_minute, count = _local_rate.get(caller, (minute, 0))
    count = count + 1 if counted_minute == minute else 1
    _local_rate.put(caller, (minute, count))
    return count


def _marker_key(caller: str, key: str) -> str:
    return f"cj:idem:{{{caller}}}:{key}"


_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


async def _release_marker(redis: aioredis.Redis, caller: str, key: str | None, token: str) -> None:
    """A request refused before any answer was stored must not leave its key "in flight"; only
    its own marker is removed (compare and delete), never one another request set since."""
    if key is None:
        return
    try:
        await redis.eval(_RELEASE, 1, _marker_key(caller, key), token)
    except RedisError:
        pass  # it expires within 30 s


async def _remember_consumed(redis: aioredis.Redis, jti: str, person_id: UUID) -> None:
    """After the commit: the replay pre-check learns the code, the person's benefit list goes stale."""
    mark = person_stale_mark(person_id)
    try:
        await _run(
            redis, _ACCEPTED, [_used_key(jti), mark.generation_key, mark.cache_key],
            [_REPLAY_TTL, mark.generation, mark.generation_ttl],
        )
    except RedisError:
        log.warning("redis unavailable after an accepted scan; caches refill from PostgreSQL")


async def _stored(conn, caller: str, key: str | None, fingerprint: bytes) -> bytes | None:
    """The answer stored for this key (None without a key or an answer); 422 for another body."""
    if key is None:
        return None
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

    `conn` must not be inside a transaction: each write below is one atomic statement. The hot
    path is one Redis script and at most three PostgreSQL statements (the person, the venue's
    benefits when not cached, the ledger), plus one more Redis script after an accepted scan.
    """
    caller, device_id, staff_id = _caller(principal)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255 and idempotency_key.isprintable()):
        raise BadRequest("Idempotency-Key must be 1-255 printable characters")
    venue = await _venue(conn, request.venue_id)
    _check_venue(principal, venue)
    # The decoded request, re-encoded: the same scan sent with other spacing is the same request.
    fingerprint = hashlib.sha256(_encode(request)).digest()
    now = datetime.now(timezone.utc)
    # Signature and time only (no I/O for our codes), so that the replay pre-check can ride in
    # the same Redis round trip as the key marker and the rate limit.
    try:
        verified = await identity.verify_scan_code(request.code, now=now)
        refusal = None
    except identity.ExpiredCode:
        verified, refusal = None, "expired"
    except identity.InvalidCode:
        verified, refusal = None, "invalid_code"
    except identity.CityPlatformUnavailable:
        # The city platform is down (503), but a retry of a scan already answered gets its answer.
        if (answer := await _stored(conn, caller, idempotency_key, fingerprint)) is not None:
            return answer
        raise
    token = uuid.uuid4().hex
    gate = await _ask_redis(redis, caller, idempotency_key, token, verified and verified.jti, scan_rate)
    if not gate.key_fresh:
        # Answered already (the stored answer) or still being decided by another request (409).
        if (answer := await _stored(conn, caller, idempotency_key, fingerprint)) is not None:
            return answer
        raise IdempotencyKeyInFlight("a scan with this Idempotency-Key is still being processed")
    try:
        if scan_rate > 0 and gate.scans_this_minute > scan_rate:
            # A retry of a scan answered long ago (its marker gone) still gets its answer.
            if (answer := await _stored(conn, caller, idempotency_key, fingerprint)) is not None:
                return answer
            raise ScanRateLimited(
                f"at most {scan_rate} scans a minute per device", retry_after=60 - int(time.time() % 60)
            )
        context = _ScanContext(
            request=request, venue=venue, caller=caller, device_id=device_id, staff_id=staff_id,
            key=idempotency_key, fingerprint=fingerprint, today=local_date(now),
        )
        if refusal is not None:
            return await _reject(conn, context, refusal)
        if gate.seen_consumed:
            return await _reject(conn, context, "replayed")
        return await _decide(conn, redis, context, verified, now, principal)
    except BaseException:
        await _release_marker(redis, caller, idempotency_key, token)
        raise


def _check_venue(principal, venue) -> None:
    if venue is None or venue.status != "active" or (principal.kind == "device" and principal.venue_id != venue.id) or (
        principal.kind == "staff" and principal.merchant_id != venue.merchant_id
    ):
        raise VenueNotAllowed("this scanner is not bound to that venue, or the venue is closed")


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


_offers: LocalCache[UUID, dict] = LocalCache(maxsize=10_000, ttl=5.0)
"""Each venue's list of benefits. It only ever speeds up an acceptance: the ledger statement
re-checks that the benefit is active, linked to the venue and still at the version the rules were
evaluated with (else `stale_benefit`), and every refusal is decided again from PostgreSQL before
it is given."""


async def _offered(conn, venue_id: UUID, *, fresh: bool) -> dict:
    return await _offers.get_or_load(venue_id, lambda: _load_offers(conn, venue_id), fresh=fresh)


async def _load_offers(conn, venue_id: UUID) -> dict:
    return {v.benefit_id: v for v in await benefits_at_venue(conn, venue_id)}


class _Choice(msgspec.Struct):
    """What the rules say about one scan before anything is written."""

    reason: str | None = None
    """None: go ahead and record; otherwise the refusal"""
    version: object | None = None
    verdict: object | None = None
    allowed: int = 0
    fields: dict = {}


async def _choose(conn, request: ScanRequest, verified, person, offered: dict, now: datetime) -> _Choice:
    """Pick the benefit and apply windows, eligibility and companions (no writes)."""
    wanted = request.benefit_id or verified.benefit_id
    if wanted is None:
        usable = [v for v in offered.values() if v.is_active and evaluate(v, person, now).eligible]
        if not usable:
            return _Choice("not_eligible")
        if len(usable) > 1:
            return _Choice("choose_benefit", fields={"choices": sorted((_ref(v) for v in usable), key=lambda r: r.code)})
        version = usable[0]
    else:
        version = offered.get(wanted) or await get_benefit(conn, wanted)
        if version is None or not version.is_active:
            return _Choice("benefit_inactive", version=version)
        if version.benefit_id not in offered:
            return _Choice("wrong_venue", version=version, fields={"benefit": _ref(version)})
    if not window_open(version, now):
        return _Choice("outside_window", version=version, fields={"benefit": _ref(version)})
    verdict = evaluate(version, person, now)
    if not verdict.eligible:
        return _Choice("not_eligible", version=version, fields={"benefit": _ref(version)})
    allowed = companions_allowed(version, person, now)
    if request.companions > allowed:
        return _Choice(
            "too_many_companions", version=version, allowed=allowed,
            fields={"benefit": _ref(version), "companions_allowed": allowed},
        )
    return _Choice(version=version, verdict=verdict, allowed=allowed)


async def _decide(
    conn, redis, ctx: _ScanContext, verified: identity.VerifiedScan, now: datetime, principal
) -> bytes:
    request = ctx.request
    person = await identity.scanned_person(conn, verified)
    if person is None:
        return await _reject(conn, ctx, "not_enrolled")
    ctx.person_id = person.id
    shown = Holder(name_masked=person.name_masked, category_label=_label(person))
    priority = _priority(person, ctx.today)
    if person.card_status != "ACTIVE":
        return await _reject(conn, ctx, "card_suspended", holder=shown)

    fresh = False
    while True:
        ctx.benefit_id = None
        choice = await _choose(conn, request, verified, person, await _offered(conn, ctx.venue.id, fresh=fresh), now)
        if choice.reason is not None and not fresh:
            fresh = True  # never refuse on a cached list: look again
            continue
        if choice.version is not None:
            ctx.benefit_id = choice.version.benefit_id
        if choice.reason is not None:
            return await _reject(conn, ctx, choice.reason, holder=shown, priority=priority, **choice.fields)
        outcome, answer = await _record(conn, ctx, verified, person, choice, shown, priority, now)
        if outcome == "stale_benefit" and not fresh:
            # The benefit or the venue changed since this process read them: decide again.
            ctx.venue = await _venue(conn, ctx.venue.id, fresh=True)
            _check_venue(principal, ctx.venue)
            fresh = True
            continue
        break
    if outcome == "accepted":
        await _remember_consumed(redis, verified.jti, person.id)
        return answer
    if outcome == "idempotency_conflict":
        return await _stored(conn, ctx.caller, ctx.key, ctx.fingerprint)
    if outcome == "stale_benefit":  # changed twice within one scan: refuse, the device may retry
        outcome = "benefit_inactive"
    return await _reject(
        conn, ctx, outcome, holder=shown, priority=priority, benefit=_ref(choice.version),
        companions_allowed=choice.allowed,
    )


async def _record(conn, ctx: _ScanContext, verified, person, choice: _Choice, shown, priority, now) -> tuple[str, bytes]:
    """The one ledger statement for an accepted choice; its outcome and the answer it stored."""
    version, request = choice.version, ctx.request
    redemption_id = uuid.uuid4()
    answer = _encode(
        _decision(
            "accepted", redemption_id=redemption_id, holder=shown, benefit=_ref(version), priority=priority,
            companions_allowed=choice.allowed, companions=request.companions,
        )
    )
    caps = [(period_key(cap.period, now), cap.max) for cap in version.caps]

    value = choice.verdict.value or version.value
    outcome = await db.record_redemption(
        conn, redemption_id, verified.jti, "cj" if verified.source == "cj_code" else "suishen", ctx.today,
        person.id, version.benefit_id, version.version, version.code, ctx.venue.id, ctx.venue.merchant_id,
        ctx.device_id, ctx.staff_id, request.companions, value.__struct_config__.tag, getattr(value, "amount_fen", None) or 0,
        # The benefit's own per-venue capacity; the statement applies the venue's (0043).
        priority, [k for k, _ in caps], [m for _, m in caps], version.venue_daily_capacity,
        ctx.caller, ctx.key, ctx.fingerprint, answer,
    )
    if outcome == "accepted":
        log.debug("scan accepted", extra={"fields": {"redemption_id": str(redemption_id), "benefit": version.code}})
    return outcome, answer


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


IDEMPOTENCY_MIN_AGE = timedelta(hours=24)
"""A stored answer is kept at least this long (Stripe's window): a gate retrying within it gets it."""


async def prune_idempotency_keys(conn: asyncpg.Connection, *, older_than: timedelta, batch: int = 10_000) -> int:
    """Delete stored Idempotency-Key answers older than `older_than` (at least 24 h). The ledger
    keeps every decision; only the replay of a very old key is no longer recognised (a scan that
    old carries an expired code and would be refused anyway). Batches commit one by one."""
    if older_than < IDEMPOTENCY_MIN_AGE:
        raise ValueError("stored Idempotency-Key answers are kept for at least 24 hours")
    cutoff = datetime.now(timezone.utc) - older_than
    total = 0
    while (deleted := await db.delete_idempotency_keys(conn, created_before=cutoff, batch=batch)) > 0:
        total += deleted
    return total
