"""The scan engine: code → person → benefit → rules → one atomic ledger statement.

PostgreSQL decides: single use, every cap and the stored Idempotency-Key answer are written by
one statement (`record_redemption`), so "accepted" is only said after that commit. Redis only
speeds things up (`gate`: replay pre-check, rate limit, in-flight marker); when it is down every
check still happens in PostgreSQL and scans go on.

Read `scan` top to bottom. It checks the request and the venue, verifies the code, asks the Redis
gate, then `_decide_and_record` walks the guard clauses: code refused → replayed → not enrolled
→ card suspended → `decide` (pure: which benefit, window, eligibility, companions; `Accept` or
`Refuse`) → the ledger statement. Every path ends in `Answered` (the JSON answer, its ledger row
committed) or `Stored` (this Idempotency-Key's stored answer, else the error it carries); the
stored answer is read in one place, at the end of `scan`.

The retry rule: the first pass decides from this process's caches (the venue and its benefit
list, at most 5 s old). A refusal is never given from them, and the ledger statement may say the
benefit or the venue changed since (`stale_benefit`): either way the scan is decided once more
from fresh reads of both, and that second pass is final (`stale_benefit` again → refused as
`benefit_inactive`; the device may scan again).
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
from redis.exceptions import RedisError

import identity
import merchants
from benefits.catalog import (
    BenefitVersion,
    Value,
    benefits_at_venue,
    companions_allowed,
    evaluate,
    forget_person_benefits,
    get_benefit,
    get_version,
    local_date,
    period_key,
    window_open,
)
from benefits.redemption import db, gate
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
from benefits.redemption.types import (
    BenefitRef,
    Holder,
    LedgerEntry,
    RejectedScan,
    ReversalResult,
    ScanDecision,
    ScanRequest,
    StoredAnswer,
)
from foundation.audit import write_audit
from foundation.batching import ScriptBatcher, StatementBatcher
from foundation.cache import LocalCache
from foundation.errors import BadRequest
from foundation.ids import random_hex, random_uuid
from foundation.structs import Record
from foundation.vocabulary import CATEGORIES, VETERAN_SUBKINDS

__all__ = (
    "BATCHES_IN_FLIGHT", "IDEMPOTENCY_MIN_AGE", "Accept", "Offer", "Refuse", "ScanBatches", "decide", "green_channel",
    "ledger_batches", "prune_idempotency_keys", "reverse", "scan", "scan_batches",
)

log = logging.getLogger("chongjun.scan")
_encode = msgspec.json.Encoder().encode

# The label a gate shows: the most specific identity first.
_LABEL_ORDER = (
    "DISABLED_SERVICEMAN", "MARTYR_FAMILY", "DUTY_DEATH_FAMILY", "ILLNESS_DEATH_FAMILY", "ACTIVE_SERVICE",
    "COMBAT_VETERAN", "NUCLEAR_TEST_VETERAN", "RETIRED_CADRE", "VETERAN", *sorted(VETERAN_SUBKINDS),
    "MARTYR_ELDERLY_CHILD", "SERVICE_FAMILY", "FIREFIGHTER",
)
_ELDERLY_AGE = 60


# --- what one scan is about, and how it ends ---------------------------------------------------


class _Scan(Record):
    """The facts of one scan request, fixed before any decision (never filled in as it goes)."""

    request: ScanRequest
    venue: merchants.Venue
    caller: str
    """``device:<id>`` or ``staff:<id>``: the Idempotency-Key and rate namespace"""
    device_id: UUID | None
    staff_id: UUID | None
    key: str | None
    fingerprint: bytes
    token: str
    """this request's mark on the key's in-flight marker (gate)"""
    now: datetime
    today: date
    batches: ScanBatches | None = None
    """the worker's batches its Redis gate, person read and ledger statement join; None: each alone"""


class Answered(Record):
    """The scan is decided and its row committed: send `body`."""

    body: bytes
    quota_changed: bool = False
    """accepted under a per-person cap: the person's cached benefit list is stale now"""


class Stored(Record):
    """Send the answer stored for this Idempotency-Key; without one, raise `otherwise`."""

    otherwise: Exception


# --- the decision (pure) -------------------------------------------------------------------------


class Accept(Record, tag=True):
    """Record this benefit: the rules say yes; the ledger statement has the last word."""

    benefit: BenefitVersion
    value: Value
    companions_allowed: int


class Refuse(Record, tag=True):
    """Refuse with a stable reason code (`reasons.MESSAGES`)."""

    reason: str
    benefit_id: UUID | None = None
    """the benefit the refusal is about, recorded on its `rejected_scans` row"""
    benefit: BenefitRef | None = None
    """the benefit shown in the answer"""
    companions_allowed: int = 0
    choices: list[BenefitRef] | None = None


class Offer(Record):
    """What a decision is taken from, besides the person: read before `decide`, cached or fresh."""

    offered: dict[UUID, BenefitVersion]
    """the venue's active benefits"""
    named: BenefitVersion | None = None
    """the benefit the request or the code names, whatever its status (None: none or unknown)"""
    paused: tuple[BenefitVersion, ...] = ()
    """the venue's paused benefits (read on the fresh pass only, to tell "paused" from "not for you")"""


def _ref(version: BenefitVersion) -> BenefitRef:
    return BenefitRef(id=version.benefit_id, code=version.code, name_zh=version.name_zh, name_en=version.name_en)


def decide(wanted: UUID | None, companions: int, person: identity.Person, offer: Offer, now: datetime) -> Accept | Refuse:
    """Which benefit, then its window, the eligibility rule and the companions; no I/O."""
    if wanted is None:
        usable = [v for v in offer.offered.values() if v.is_active and evaluate(v, person, now).eligible]
        if not usable:
            paused = [v for v in offer.paused if evaluate(v, person, now).eligible]
            if paused:  # entitled, but the benefit is paused: say so, not "not eligible"
                return Refuse("benefit_inactive", benefit_id=paused[0].benefit_id if len(paused) == 1 else None)
            return Refuse("not_eligible")
        if len(usable) > 1:
            return Refuse("choose_benefit", choices=sorted((_ref(v) for v in usable), key=lambda r: r.code))
        version = usable[0]
    else:
        version = offer.named
        if version is None or not version.is_active:
            return Refuse("benefit_inactive", benefit_id=version.benefit_id if version is not None else None)
        if version.benefit_id not in offer.offered:
            return Refuse("wrong_venue", benefit_id=version.benefit_id, benefit=_ref(version))
    about = {"benefit_id": version.benefit_id, "benefit": _ref(version)}
    if not window_open(version, now):
        return Refuse("outside_window", **about)
    verdict = evaluate(version, person, now)
    if not verdict.eligible:
        return Refuse("not_eligible", **about)
    allowed = companions_allowed(version, person, now)
    if companions > allowed:
        return Refuse("too_many_companions", companions_allowed=allowed, **about)
    return Accept(benefit=version, value=verdict.value or version.value, companions_allowed=allowed)


# --- the orchestrator ----------------------------------------------------------------------------


async def scan(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    principal: identity.Principal,
    request: ScanRequest,
    *,
    idempotency_key: str | None,
    scan_rate: int,
    keyring: identity.KeyRing,
    providers: identity.CityProviders,
    batches: ScanBatches | None = None,
) -> bytes:
    """Decide one scan and return the JSON answer (the stored first one for a repeated key).

    `keyring` and `providers` verify the scanned code (`identity.verify_scan_code`). `batches`:
    the worker's batches (`scan_batches`) its Redis gate, person read and ledger statement join;
    None: each runs alone, on `conn` and `redis`.

    `conn` must not be inside a transaction: each write below is one atomic statement. The hot
    path is one Redis script and at most three PostgreSQL statements (the person, the venue's
    benefits when not cached, the ledger: two at a cached venue), plus one more Redis script
    after a scan accepted under a per-person cap (the person's benefit list goes stale). A code
    Redis saw before is first looked up in `consumed_codes`.
    """
    scan = await _open(conn, principal, request, idempotency_key, batches)
    holds_marker = False
    try:
        code = await _verify(scan, keyring=keyring, providers=providers)
        if isinstance(code, Stored):
            ending: Answered | Stored = code
        else:
            passed = await gate.ask(
                redis, caller=scan.caller, key=scan.key, token=scan.token,
                jti=code.jti if isinstance(code, identity.VerifiedScan) else None, per_minute=scan_rate,
                batches=batches and batches.gate,
            )
            holds_marker = passed.key_fresh
            ending = _admit(passed, scan_rate) or await _decide_and_record(conn, redis, principal, scan, code, passed)
        if isinstance(ending, Answered):
            return ending.body
        # The one place a stored answer is read: a retry of a scan already answered gets it
        # whether the key is marked, the device is over its rate or the city platform is down.
        answer = await _stored(conn, scan)
        if answer is None:
            raise ending.otherwise
        return answer
    except BaseException:
        # Ending without an answer of its own: the key must not stay "in flight".
        if holds_marker:
            await gate.release_marker(redis, caller=scan.caller, key=scan.key, token=scan.token)
        raise


BATCHES_IN_FLIGHT = 1
"""Batches of each kind one worker runs at once (each PostgreSQL one on a connection of its own)."""


class ScanBatches(Record):
    """What a worker's concurrent scans share a round trip for (foundation/batching.py): the Redis
    gate (None on a Redis Cluster, where each part goes to its own node), the person read and the
    ledger statement. One per worker, made at start (api.lifespan)."""

    gate: ScriptBatcher | None
    reads: identity.PersonReads
    ledger: StatementBatcher


def ledger_batches(pool: asyncpg.Pool) -> StatementBatcher:
    """The ledger statement of this worker's scans in batches; `pool` is the batches' own, of
    `BATCHES_IN_FLIGHT` connections (a scan holds one of the main pool while it waits)."""
    return StatementBatcher(pool, db.RECORD_IN_BATCHES, max_in_flight=BATCHES_IN_FLIGHT, order=db.ledger_lock_order)


def scan_batches(redis: aioredis.Redis, *, reads_pool: asyncpg.Pool, ledger_pool: asyncpg.Pool) -> ScanBatches:
    """The worker's `ScanBatches`; each pool of `BATCHES_IN_FLIGHT` connections, its own."""
    return ScanBatches(
        gate=gate.ask_batches(redis, in_flight=BATCHES_IN_FLIGHT),
        reads=identity.PersonReads(reads_pool, in_flight=BATCHES_IN_FLIGHT),
        ledger=ledger_batches(ledger_pool),
    )


async def _open(
    conn: asyncpg.Connection, principal: identity.Principal, request: ScanRequest, key: str | None,
    batches: ScanBatches | None,
) -> _Scan:
    """The request's facts; 400 for a malformed key, 403 when the caller may not scan there."""
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise BadRequest("Idempotency-Key must be 1-255 printable characters")
    venue = _allowed(principal, await _venue(conn, request.venue_id))
    now = datetime.now(timezone.utc)
    if principal.kind == "device":
        caller, device_id, staff_id = f"device:{principal.subject}", principal.subject, None
    else:
        caller, device_id, staff_id = f"staff:{principal.subject}", None, principal.subject
    return _Scan(
        request=request, venue=venue, caller=caller, device_id=device_id, staff_id=staff_id, key=key,
        # The decoded request, re-encoded: the same scan sent with other spacing is the same request.
        fingerprint=hashlib.sha256(_encode(request)).digest(),
        token=random_hex(16), now=now, today=local_date(now), batches=batches,
    )


def _allowed(principal: identity.Principal, venue: merchants.Venue | None) -> merchants.Venue:
    if venue is None or venue.status != "active" or (principal.kind == "device" and principal.venue_id != venue.id) or (
        principal.kind == "staff" and principal.merchant_id != venue.merchant_id
    ):
        raise VenueNotAllowed("this scanner is not bound to that venue, or the venue is closed")
    return venue


async def _verify(
    scan: _Scan, *, keyring: identity.KeyRing, providers: identity.CityProviders
) -> identity.VerifiedScan | Refuse | Stored:
    """Signature and time only (no I/O for our codes), so that the replay pre-check can ride in
    the same Redis round trip as the key marker and the rate limit."""
    try:
        return await identity.verify_scan_code(scan.request.code, keyring=keyring, providers=providers, now=scan.now)
    except identity.ExpiredCode:
        return Refuse("expired")
    except identity.InvalidCode:
        return Refuse("invalid_code")
    except identity.CityPlatformUnavailable as down:
        return Stored(otherwise=down)  # 503, unless this key was answered before the platform went


def _admit(passed: gate.Gate, scan_rate: int) -> Stored | None:
    """The gate's answer: another request has this key (answered or still deciding), or the
    device is over its rate; None: go on."""
    if not passed.key_fresh:
        return Stored(otherwise=IdempotencyKeyInFlight("a scan with this Idempotency-Key is still being processed"))
    if scan_rate > 0 and passed.scans_this_minute > scan_rate:
        return Stored(
            otherwise=ScanRateLimited(f"at most {scan_rate} scans a minute per device", retry_after=60 - int(time.time() % 60))
        )
    return None


async def _decide_and_record(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    principal: identity.Principal,
    scan: _Scan,
    code: identity.VerifiedScan | Refuse,
    passed: gate.Gate,
) -> Answered | Stored:
    """The guard clauses, in order, down to the ledger statement."""
    if isinstance(code, Refuse):
        return await _refuse(conn, scan, code)
    if passed.seen_before and await db.code_consumed(conn, code.jti, expires_at=code.expires_at):
        return await _refuse(conn, scan, Refuse("replayed"))
    reads = scan.batches and scan.batches.reads
    scanned = await identity.scanned_person(conn, code, reads=reads)
    ending = await _pass(conn, scan, code, scanned, fresh=False)
    if ending is None:  # a stale read: decide once more from fresh reads of the venue, its benefits and the person
        scan = msgspec.structs.replace(scan, venue=_allowed(principal, await _venue(conn, scan.venue.id, fresh=True)))
        if scanned is not None and scanned.version is not None:  # a kept copy, not read just now
            scanned = await identity.scanned_person(conn, code, reads=reads, fresh=True)
        ending = await _pass(conn, scan, code, scanned, fresh=True)
    if isinstance(ending, Answered) and ending.quota_changed and scanned is not None:
        await gate.mark_quota_stale(redis, person_id=scanned.person.id)
    return ending  # type: ignore[return-value]  (None only ever comes from the first pass)


async def _pass(
    conn: asyncpg.Connection, scan: _Scan, code: identity.VerifiedScan, scanned: identity.ScannedPerson | None, *, fresh: bool
) -> Answered | Stored | None:
    """The person's guard clauses, the decision and the ledger statement, from cached reads
    (the first pass) or fresh ones. None: the first pass read something stale."""
    if scanned is None:  # never a kept copy (only active cards are kept)
        return await _refuse(conn, scan, Refuse("not_enrolled"))
    person = scanned.person
    holder = Holder(name_masked=person.name_masked, category_label=_label(person))
    if person.card_status != "ACTIVE":
        return await _refuse(conn, scan, Refuse("card_suspended"), person=person, holder=holder)
    priority = green_channel(person, scan.today)
    wanted = scan.request.benefit_id or code.benefit_id
    outcome = await _attempt(conn, scan, code, scanned, wanted, holder, priority, fresh=fresh)
    if isinstance(outcome, Refuse):
        return await _refuse(conn, scan, outcome, person=person, holder=holder, priority=priority)
    return outcome


async def _attempt(
    conn: asyncpg.Connection,
    scan: _Scan,
    code: identity.VerifiedScan,
    scanned: identity.ScannedPerson,
    wanted: UUID | None,
    holder: Holder,
    priority: bool,
    *,
    fresh: bool,
) -> Answered | Stored | Refuse | None:
    """One pass: decide, and record an acceptance. None: the first pass read something stale."""
    person = scanned.person
    verdict = decide(wanted, scan.request.companions, person, await _offer(conn, scan.venue.id, wanted, fresh=fresh), scan.now)
    if isinstance(verdict, Refuse):
        return verdict if fresh else None  # never refuse on a cached list or person: look again
    outcome, body = await _record(conn, scan, code, scanned, verdict, holder, priority)
    if outcome == "accepted":
        return Answered(body, quota_changed=bool(verdict.benefit.caps))
    if outcome == "idempotency_conflict":  # another request with this key answered first
        return Stored(otherwise=IdempotencyKeyInFlight("a scan with this Idempotency-Key is still being processed"))
    if outcome == "stale_person":  # only ever said to the first pass: the fresh one checks no version
        return None
    if outcome == "stale_benefit":
        if not fresh:
            return None
        outcome = "benefit_inactive"  # changed twice within one scan: refuse, the device may retry
    return Refuse(
        outcome, benefit_id=verdict.benefit.benefit_id, benefit=_ref(verdict.benefit),
        companions_allowed=verdict.companions_allowed,
    )


async def _record(
    conn: asyncpg.Connection,
    scan: _Scan,
    code: identity.VerifiedScan,
    scanned: identity.ScannedPerson,
    accept: Accept,
    holder: Holder,
    priority: bool,
) -> tuple[str, bytes]:
    """The one ledger statement for an acceptance: its outcome, and the answer it stored if accepted."""
    version, request, person = accept.benefit, scan.request, scanned.person
    redemption_id = random_uuid()
    body = _encode(
        _answer(
            "accepted", redemption_id=redemption_id, holder=holder, benefit=_ref(version), priority=priority,
            companions_allowed=accept.companions_allowed, companions=request.companions,
        )
    )
    caps = [(period_key(cap.period, scan.now), cap.max) for cap in version.caps]
    outcome = await db.record_redemption(
        conn,
        batches=scan.batches and scan.batches.ledger,
        entry=LedgerEntry(
            id=redemption_id, jti=code.jti, code_expires_at=code.expires_at,
            code_source="cj" if code.source == "cj_code" else "suishen",
            service_day=scan.today, person_id=person.id, benefit_id=version.benefit_id,
            benefit_version=version.version, benefit_code=version.code, venue_id=scan.venue.id,
            merchant_id=scan.venue.merchant_id, device_id=scan.device_id, staff_id=scan.staff_id,
            companions=request.companions, value_kind=accept.value.__struct_config__.tag,  # type: ignore[arg-type]
            value_fen=getattr(accept.value, "amount_fen", None) or 0, priority=priority,
            period_keys=[k for k, _ in caps], period_caps=[m for _, m in caps],
            venue_capacity=version.venue_daily_capacity, person_version=scanned.version,
            answer=_to_store(scan, body),
        ),
    )
    if outcome == "accepted":
        log.debug("scan accepted", extra={"fields": {"redemption_id": str(redemption_id), "benefit": version.code}})
    return outcome, body


async def _refuse(
    conn: asyncpg.Connection,
    scan: _Scan,
    refusal: Refuse,
    *,
    person: identity.Person | None = None,
    holder: Holder | None = None,
    priority: bool = False,
) -> Answered | Stored:
    """Record the refusal with its answer in one statement; Stored when this key was answered first."""
    body = _encode(
        _answer(
            refusal.reason, holder=holder, priority=priority, benefit=refusal.benefit,
            companions_allowed=refusal.companions_allowed, choices=refusal.choices,
        )
    )
    stored_first = await db.record_rejection(
        conn,
        entry=RejectedScan(
            id=random_uuid(), service_day=scan.today, reason=refusal.reason, venue_id=scan.venue.id,
            merchant_id=scan.venue.merchant_id, device_id=scan.device_id, staff_id=scan.staff_id,
            person_id=person.id if person is not None else None, benefit_id=refusal.benefit_id,
            answer=_to_store(scan, body),
        ),
    )
    if stored_first:
        return Answered(body)
    return Stored(otherwise=IdempotencyKeyInFlight("a scan with this Idempotency-Key is still being processed"))


def _answer(reason: str, **fields: object) -> ScanDecision:
    zh, en = MESSAGES[reason]
    return ScanDecision(
        decision="accepted" if reason == "accepted" else "rejected", reason=reason, message=zh, message_en=en,
        **fields,  # type: ignore[arg-type]
    )


def _to_store(scan: _Scan, body: bytes) -> StoredAnswer:
    return StoredAnswer(caller=scan.caller, key=scan.key, fingerprint=scan.fingerprint, response=body)


async def _stored(conn: asyncpg.Connection, scan: _Scan) -> bytes | None:
    """The answer stored for this key (None without a key or an answer); 422 for another body."""
    if scan.key is None:
        return None
    row = await db.get_stored_answer(conn, caller=scan.caller, key=scan.key)
    if row is None:
        return None
    if bytes(row["fingerprint"]) != scan.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was first used with another body")
    return bytes(row["response"])


def _label(person: identity.Person) -> str:
    for code in _LABEL_ORDER:
        if code in person.categories:
            return CATEGORIES[code][0]
    return "优抚对象"


def green_channel(person: identity.Person, today: date) -> bool:
    """为老服务绿色通道: elderly holders and grade 1–4 disabled holders go first."""
    if person.disability_grade is not None and person.disability_grade <= 4:
        return True
    born = person.birth_date
    if born is None:
        return False
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return age >= _ELDERLY_AGE


# --- what the scan reads, cached for a few seconds (foundation.cache's rule) -------------------

_venues: LocalCache[UUID, merchants.Venue | None] = LocalCache(maxsize=10_000, ttl=5.0)
"""Venues of scans. Only who may scan there is decided from it; the ledger statement reads the
venue's capacity and status itself (migration 0043)."""

_offers: LocalCache[UUID, dict[UUID, BenefitVersion]] = LocalCache(maxsize=10_000, ttl=5.0)
"""Each venue's active benefits. It only ever speeds up an acceptance: the ledger statement
re-checks that the benefit is active, linked to the venue and still at the version the rules were
evaluated with (else `stale_benefit`), and every refusal is decided again from PostgreSQL before
it is given."""


async def _venue(conn: asyncpg.Connection, venue_id: UUID, *, fresh: bool = False) -> merchants.Venue | None:
    """The venue of a scan: every scan at a gate names the same one."""
    return await _venues.get_or_load(venue_id, lambda: merchants.find_venue(conn, venue_id), fresh=fresh)


async def _offer(conn: asyncpg.Connection, venue_id: UUID, wanted: UUID | None, *, fresh: bool) -> Offer:
    offered = await _offers.get_or_load(venue_id, lambda: _load_offers(conn, venue_id), fresh=fresh)
    if wanted is not None:
        return Offer(offered, named=offered.get(wanted) or await get_benefit(conn, wanted))
    if fresh:
        return Offer(offered, paused=await _paused_at(conn, venue_id))
    return Offer(offered)


async def _load_offers(conn: asyncpg.Connection, venue_id: UUID) -> dict[UUID, BenefitVersion]:
    return {v.benefit_id: v for v in await benefits_at_venue(conn, venue_id)}


async def _paused_at(conn: asyncpg.Connection, venue_id: UUID) -> tuple[BenefitVersion, ...]:
    found = [await get_version(conn, row["id"], row["current_version"]) for row in await db.list_paused_at_venue(conn, venue_id)]
    return tuple(v for v in found if v is not None)


# --- reversals and housekeeping ------------------------------------------------------------------


async def reverse(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    principal: identity.Principal,
    redemption_id: UUID,
    reason: str,
    *,
    window_seconds: int,
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
    device_id = principal.subject if principal.kind == "device" else None
    staff_id = principal.subject if principal.kind != "device" else None
    row = await db.insert_reversal(
        conn, reversal_id=uuid.uuid4(), original=original, service_day=local_date(now),
        device_id=device_id, staff_id=staff_id, reason=reason,
    )
    if row is None:
        raise AlreadyReversed("this redemption was already reversed")
    await db.give_back_quota(conn, original)
    venue = await merchants.find_venue(conn, original["venue_id"])
    await write_audit(
        conn, actor_kind=principal.kind, actor_id=str(principal.subject), actor_role=principal.role,
        actor_district=principal.district, action="redemption.reverse", object_kind="redemption",
        object_id=str(redemption_id), district=venue.district if venue else None,
        detail={"reversal_id": str(row["id"]), "venue_id": str(original["venue_id"]),
                "merchant_id": str(original["merchant_id"]), "benefit_id": str(original["benefit_id"])},
    )
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
