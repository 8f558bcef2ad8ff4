-- One venue's gates no longer all fall back to the capacity's slow path at once (issue 16).
--
-- A scan holds its stripe (migration 0044) until its commit, and a commit waits for its fsync.
-- With more scans in flight at one venue than there are stripes, none is free, the fast path
-- finds nothing, and every such scan ran the ledger statement a second time on the slow path,
-- which locks every stripe of the scope in order: the venue's scans were serialized again, each
-- paying two ledger statements. Measured with the real ledger statement (32 connections, one
-- venue with a capacity; .bench/pgconc.py in the note of issue 16): 80 % of scans took the slow
-- path, 2.6 ms of backend CPU per scan against 0.44 ms at a venue without a capacity; with 8
-- connections none did (0.5 ms). `chongjun bench scans --venues 1` at 32 connections is that case.
--
-- Now a scope has 64 stripes (more than a venue has gates scanning at once, and more than two
-- workers' pools hold connections), and the fast path walks them in stripe order from a random
-- start (two index ranges; the first free stripe with room ends the walk) instead of sorting
-- all of them on every scan. The cap stays exact as before: the slow path is 0044's with 64 for
-- 16. A day whose stripes were shared out as 16 still works on the fast path; its first slow
-- path finds 16 rows where 64 are wanted and counts the day from the ledger (0044's rule for
-- missing stripes), under the scope's advisory lock, then shares out 64.

ALTER TABLE capacity_stripes DROP CONSTRAINT capacity_stripes_stripe_check,
    ADD CONSTRAINT capacity_stripes_stripe_check CHECK (stripe BETWEEN 0 AND 63);

-- 0044's slow path with 64 stripes: lock them in stripe order, share out what is left again.
CREATE OR REPLACE FUNCTION capacity_take_slow(
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
        used_now := array_fill(0, ARRAY[64]);
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
        EXIT WHEN (found_rows = 64 AND current_ok) OR counted;
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
    IF found_rows = 64 AND current_ok THEN
        total := p_take;
        FOR i IN 1 .. 64 LOOP
            total := total + used_now[i];
        END LOOP;
        used_now[1] := used_now[1] + p_take;
    ELSE
        total := capacity_used_in_ledger(p_venue_id, p_scope, p_day);
        used_now := array_fill(0, ARRAY[64]);
        used_now[1] := total;
    END IF;
    IF total > p_cap THEN
        RAISE EXCEPTION 'venue capacity reached' USING ERRCODE = 'CJQ02';
    END IF;
    left_over := p_cap - total;
    INSERT INTO capacity_stripes AS s (venue_id, scope, service_day, stripe, used, share, cap, epoch)
    SELECT p_venue_id, p_scope, p_day, n - 1, used_now[n],
           used_now[n] + left_over / 64 + CASE WHEN n - 1 < left_over % 64 THEN 1 ELSE 0 END, p_cap, p_epoch
    FROM generate_series(1, 64) AS n
    ON CONFLICT (venue_id, scope, service_day, stripe) DO UPDATE
        SET used = excluded.used, share = excluded.share, cap = excluded.cap, epoch = excluded.epoch;
END;
$$;

-- The fast path: a stripe nobody holds with room in its share, from a random start upwards and
-- then from 0 up to it (each an index range in stripe order); never a wait. None: CJQ05, and
-- the caller runs the whole statement again with `p_slow` (0044 says why a new statement).
CREATE OR REPLACE FUNCTION capacity_take(
    p_venue_id uuid, p_scope uuid, p_day date, p_cap integer, p_epoch text, p_take integer, p_slow boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    start smallint := floor(random() * 64)::smallint;  -- once, not per row (random() is volatile)
    pick smallint;
BEGIN
    IF p_slow THEN
        PERFORM capacity_take_slow(p_venue_id, p_scope, p_day, p_cap, p_epoch, p_take);
        RETURN;
    END IF;
    SELECT stripe INTO pick FROM capacity_stripes
    WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe >= start
      AND cap = p_cap AND epoch = p_epoch AND used + p_take <= share
    ORDER BY stripe
    LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT stripe INTO pick FROM capacity_stripes
        WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe < start
          AND cap = p_cap AND epoch = p_epoch AND used + p_take <= share
        ORDER BY stripe
        LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no free stripe with room' USING ERRCODE = 'CJQ05';
    END IF;
    UPDATE capacity_stripes SET used = used + p_take
    WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe = pick;
END;
$$;
