-- No hot row on the scan path. Before this, every accepted scan upserted its venue's one
-- `venue_day_usage` row, even at a venue with no capacity, and held that row's lock until the
-- commit: all the gates of a venue queued on it. Now:
--
-- * A scan takes a capacity counter only where there is a capacity: the venue's own daily
--   capacity (scope = the venue's id: everyone the venue admits that day, under any benefit)
--   and the benefit's per-venue daily capacity (scope = the benefit's id: those admitted under
--   that benefit at that venue that day). Before, the smaller of the two was checked against the
--   venue's total, which made a benefit's capacity count other benefits' visitors.
-- * Where there is one, it is striped: `capacity_stripes` holds 16 rows per (venue, scope, day),
--   each with its own allowance (`share`); the shares add up to the capacity. A scan adds to a
--   stripe nobody else holds (FOR UPDATE SKIP LOCKED, from a random start) within that stripe's
--   share: the fast path, one row lock and never a wait. When no free stripe has room, the
--   statement is run again (CJQ05, one more round trip) on the slow path: it locks all 16 in
--   stripe order and shares out what is left again. When the capacity
--   changed since the stripes were shared out (`cap`, `epoch`: the venue's updated_at in
--   microseconds, or the benefit's version), it also takes the scope's advisory lock and counts
--   the day from the ledger (the truth) first. The cap is exact: no stripe goes past its share
--   and the shares never add up to more than the capacity.
-- * A scan that skips a counter because there is no capacity takes that scope's advisory lock
--   in shared mode and then re-reads the capacity. The slow path that counts a scope from the
--   ledger holds the lock exclusively, so it waits for every such scan in flight and counts it;
--   a scan that finds a capacity appeared meanwhile raises CJQ04 (decide again).
--   Locks are always taken venue scope first, benefit scope second: no deadlock.
-- * Reports and stats read the ledger (`redemptions`), never these rows.
--
-- Deploy: this replaces `record_redemption` and drops `venue_day_usage` (its counts are rebuilt
-- from the ledger on the first scan of each venue with a capacity). Stop the old workers first.

CREATE TABLE capacity_stripes (
    venue_id    uuid NOT NULL,
    scope       uuid NOT NULL,                  -- = venue_id: the venue's capacity; else a benefit's id
    service_day date NOT NULL,
    stripe      smallint NOT NULL CHECK (stripe BETWEEN 0 AND 15),
    used        integer NOT NULL CHECK (used >= 0),
    share       integer NOT NULL,               -- this stripe's allowance (holders + companions)
    cap         integer NOT NULL,               -- the capacity the shares were made for
    epoch       text NOT NULL,                  -- the venue's updated_at or the benefit's version then
    CHECK (used <= share),
    PRIMARY KEY (venue_id, scope, service_day, stripe)
);

DROP TABLE venue_day_usage;

-- The scope's lock key: a two-int advisory lock (its key space never meets the one-bigint locks
-- the migration runner and the roster import take).
CREATE FUNCTION capacity_lock_key(p_scope uuid, p_day date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashtext(p_scope::text || p_day::text) $$;

-- People a scope admitted on a day by the ledger: accepted scans not reversed, with companions.
CREATE FUNCTION capacity_used_in_ledger(p_venue_id uuid, p_scope uuid, p_day date) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(1 + r.companions), 0)::integer
    FROM redemptions r
    WHERE r.venue_id = p_venue_id AND r.service_day = p_day AND r.kind = 'redemption'
      AND (p_scope = p_venue_id OR r.benefit_id = p_scope)
      AND NOT EXISTS (SELECT 1 FROM redemptions x WHERE x.reverses = r.id)
$$;

-- The slow path: lock the scope's stripes in stripe order and share out what is left again,
-- after adding `p_take`; raises CJQ02 when it does not fit. Stripes missing or made for another
-- capacity: under the scope's advisory lock (exclusive), count the day from the ledger first.
-- It runs in a statement that took no stripe of the scope before (`capacity_take`), so waiting
-- here for stripes in order and then for the advisory lock closes no cycle: whoever holds the
-- advisory lock exclusively holds every stripe already, and the shared holders never wait for
-- stripes of the scope they skipped.
CREATE FUNCTION capacity_take_slow(
    p_venue_id uuid, p_scope uuid, p_day date, p_cap integer, p_epoch text, p_take integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    used_now integer[];
    current_ok boolean;
    found_rows integer;
    r record;
    total integer;
    left_over integer;
    i integer;
    counted boolean := false;
BEGIN
    LOOP
        used_now := array_fill(0, ARRAY[16]);
        current_ok := true;
        found_rows := 0;
        FOR r IN
            SELECT stripe, used, cap, epoch FROM capacity_stripes
            WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day
            ORDER BY stripe FOR UPDATE
        LOOP
            found_rows := found_rows + 1;
            used_now[r.stripe + 1] := r.used;
            IF r.cap <> p_cap OR r.epoch <> p_epoch THEN
                current_ok := false;
            END IF;
        END LOOP;
        EXIT WHEN (found_rows = 16 AND current_ok) OR counted;
        -- New or changed capacity. Under the lock, it must still be the one this scan was
        -- decided with (else decide again, CJQ04: a stale reader never re-shares an old cap);
        -- then look at the rows once more (another scan may have counted meanwhile) and, if
        -- they are still not for this capacity, count the day from the ledger: this scan's own
        -- row included, and every scan that skipped the counter has committed (they hold the
        -- lock shared).
        PERFORM pg_advisory_xact_lock(16, capacity_lock_key(p_scope, p_day));
        IF p_scope = p_venue_id THEN
            PERFORM 1 FROM venues v WHERE v.id = p_venue_id AND v.daily_capacity = p_cap
                AND (extract(epoch FROM v.updated_at) * 1000000)::bigint::text = p_epoch;
        ELSE
            PERFORM 1 FROM benefits b WHERE b.id = p_scope AND b.current_version::text = p_epoch;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'capacity changed' USING ERRCODE = 'CJQ04';
        END IF;
        counted := true;
    END LOOP;
    IF found_rows = 16 AND current_ok THEN
        total := p_take;
        FOR i IN 1 .. 16 LOOP
            total := total + used_now[i];
        END LOOP;
        used_now[1] := used_now[1] + p_take;
    ELSE
        total := capacity_used_in_ledger(p_venue_id, p_scope, p_day);
        used_now := array_fill(0, ARRAY[16]);
        used_now[1] := total;
    END IF;
    IF total > p_cap THEN
        RAISE EXCEPTION 'venue capacity reached' USING ERRCODE = 'CJQ02';
    END IF;
    left_over := p_cap - total;
    INSERT INTO capacity_stripes AS s (venue_id, scope, service_day, stripe, used, share, cap, epoch)
    SELECT p_venue_id, p_scope, p_day, n - 1, used_now[n],
           used_now[n] + left_over / 16 + CASE WHEN n - 1 < left_over % 16 THEN 1 ELSE 0 END, p_cap, p_epoch
    FROM generate_series(1, 16) AS n
    ON CONFLICT (venue_id, scope, service_day, stripe) DO UPDATE
        SET used = excluded.used, share = excluded.share, cap = excluded.cap, epoch = excluded.epoch;
END;
$$;

-- Take `p_take` people from a scope's capacity. The fast path takes a stripe nobody holds (SKIP
-- LOCKED, from a random start) with room in its share, and never waits. Without one it raises
-- CJQ05 and the caller runs the whole statement again (nothing was written) with `p_slow`: that
-- run goes straight to the slow path. It must be a new statement: a fast-path SELECT whose
-- row changed under it keeps that row locked although it did not return it, and a transaction
-- that holds a stripe out of order must not wait for the others (a deadlock).
CREATE FUNCTION capacity_take(
    p_venue_id uuid, p_scope uuid, p_day date, p_cap integer, p_epoch text, p_take integer, p_slow boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    start smallint := floor(random() * 16)::smallint;  -- once, not per row (random() is volatile)
    pick smallint;
BEGIN
    IF p_slow THEN
        PERFORM capacity_take_slow(p_venue_id, p_scope, p_day, p_cap, p_epoch, p_take);
        RETURN;
    END IF;
    SELECT stripe INTO pick FROM capacity_stripes
    WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day
      AND cap = p_cap AND epoch = p_epoch AND used + p_take <= share
    ORDER BY (stripe + 16 - start) % 16
    LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no free stripe with room' USING ERRCODE = 'CJQ05';
    END IF;
    UPDATE capacity_stripes SET used = used + p_take
    WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe = pick;
END;
$$;

-- A reversal gives its people back to the day it counted on, locking in stripe order (the slow
-- path's order), from the stripes that hold them; shares stay, so the room is usable at once.
CREATE FUNCTION capacity_give_back(p_venue_id uuid, p_scope uuid, p_day date, p_count integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
    left_over integer := p_count;
BEGIN
    FOR r IN
        SELECT stripe, used FROM capacity_stripes
        WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day
        ORDER BY stripe FOR UPDATE
    LOOP
        EXIT WHEN left_over <= 0;
        IF r.used > 0 THEN
            UPDATE capacity_stripes SET used = used - least(r.used, left_over)
            WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe = r.stripe;
            left_over := left_over - least(r.used, left_over);
        END IF;
    END LOOP;
END;
$$;

-- The new parameter p_slow makes it a new signature: drop the old one, so no call is ambiguous.
DROP FUNCTION record_redemption(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer, text, text, bytea, bytea
);

CREATE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    admitted integer := 1 + p_companions;
    venue_cap integer;
    venue_epoch text;
    venue_status text;
BEGIN
    -- The venue's own capacity and status, read here: the scan service may hold the venue in
    -- memory for a few seconds, and a lowered capacity must count at once.
    SELECT v.daily_capacity, (extract(epoch FROM v.updated_at) * 1000000)::bigint::text, v.status INTO venue_cap, venue_epoch, venue_status
    FROM venues v WHERE v.id = p_venue_id;
    IF NOT FOUND OR venue_status <> 'active' THEN
        RAISE EXCEPTION 'venue changed' USING ERRCODE = 'CJQ04';
    END IF;
    PERFORM 1 FROM benefits b JOIN venue_benefits vb ON vb.benefit_id = b.id AND vb.venue_id = p_venue_id
    WHERE b.id = p_benefit_id AND b.current_version = p_benefit_version AND b.status = 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'benefit changed' USING ERRCODE = 'CJQ04';
    END IF;
    INSERT INTO consumed_codes (jti, redemption_id) VALUES (p_jti, p_id) ON CONFLICT (jti) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'code already used' USING ERRCODE = 'CJQ00';
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_period_keys, 1), 0) LOOP
        INSERT INTO quota_usage AS q (person_id, benefit_id, period_key, used)
        SELECT p_person_id, p_benefit_id, p_period_keys[i], 1 WHERE p_period_caps[i] >= 1
        ON CONFLICT (person_id, benefit_id, period_key)
            DO UPDATE SET used = q.used + 1 WHERE q.used < p_period_caps[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'quota exhausted' USING ERRCODE = 'CJQ01';
        END IF;
    END LOOP;
    INSERT INTO redemptions (
        id, kind, service_day, person_id, benefit_id, benefit_version, benefit_code, venue_id,
        merchant_id, device_id, staff_id, jti, code_source, companions, value_kind, value_fen,
        period_keys, priority
    ) VALUES (
        p_id, 'redemption', p_service_day, p_person_id, p_benefit_id, p_benefit_version, p_benefit_code,
        p_venue_id, p_merchant_id, p_device_id, p_staff_id, p_jti, p_code_source, p_companions,
        p_value_kind, p_value_fen, p_period_keys, p_priority
    );
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (caller, key, fingerprint, status, response)
        VALUES (p_idem_caller, p_idem_key, p_idem_fingerprint, 200, p_idem_response)
        ON CONFLICT (caller, key) DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'CJQ03';
        END IF;
    END IF;
    -- Capacities last (their rows are the ones other scans at the venue may want), venue scope
    -- first, benefit scope second: the one lock order.
    IF venue_cap IS NOT NULL THEN
        PERFORM capacity_take(p_venue_id, p_venue_id, p_service_day, venue_cap, venue_epoch, admitted, p_slow);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(16, capacity_lock_key(p_venue_id, p_service_day));
        IF EXISTS (SELECT 1 FROM venues v WHERE v.id = p_venue_id AND v.daily_capacity IS NOT NULL) THEN
            RAISE EXCEPTION 'venue capacity appeared' USING ERRCODE = 'CJQ04';
        END IF;
    END IF;
    IF p_venue_capacity IS NOT NULL THEN
        PERFORM capacity_take(p_venue_id, p_benefit_id, p_service_day, p_venue_capacity, p_benefit_version::text, admitted, p_slow);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(16, capacity_lock_key(p_benefit_id, p_service_day));
        IF NOT EXISTS (SELECT 1 FROM benefits b WHERE b.id = p_benefit_id AND b.current_version = p_benefit_version) THEN
            RAISE EXCEPTION 'benefit changed' USING ERRCODE = 'CJQ04';
        END IF;
    END IF;
    RETURN 'accepted';
END;
$$;
