-- The capacity's fast path without a sort (issue 16).
--
-- Measured on a busy venue (perf on the ledger connection's backend, 200 returning people, one
-- gate): half of the ledger statement's PostgreSQL time went to `capacity_take`'s pick of a
-- stripe. Its generic plan is a bitmap heap scan of all 64 stripes and a sort of them: every
-- version of each busy row visited (heap_hot_search_buffer, visibility checks) to lock one.
--
-- Now the scan first asks for its own stripe (the transaction's, as 0058 chose it) alone, by
-- its primary key, `FOR UPDATE SKIP LOCKED` as before: one index lookup, no sort. Only when
-- that stripe has no room, is held by another transaction or does not exist yet does the walk
-- over the others run, as before. No stripe is ever waited for: a direct `UPDATE` would wait
-- for a stripe held by a slow-path scan that itself waits for this batch's shared lock of the
-- scope (0044), a deadlock; the tests caught one.
--
-- `capacity_lock_key` is written so that PostgreSQL can inline it (an IMMUTABLE SQL function is
-- inlined only when its body is immutable too; date's text form depends on DateStyle, so it
-- ran through the SQL-function executor on every scan). The key changes value: every caller is
-- in the database and uses this one definition.

CREATE OR REPLACE FUNCTION capacity_lock_key(p_scope uuid, p_day date) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT hashtext(p_scope::text || (p_day - DATE '2000-01-01')::text) $$;

CREATE OR REPLACE FUNCTION capacity_take(
    p_venue_id uuid, p_scope uuid, p_day date, p_cap integer, p_epoch text, p_take integer, p_slow boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    start smallint := (pg_current_xact_id()::text::bigint % 64)::smallint;
    pick smallint;
BEGIN
    IF p_slow THEN
        PERFORM capacity_take_slow(p_venue_id, p_scope, p_day, p_cap, p_epoch, p_take);
        RETURN;
    END IF;
    SELECT stripe INTO pick FROM capacity_stripes
    WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe = start
      AND cap = p_cap AND epoch = p_epoch AND used + p_take <= share
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT stripe INTO pick FROM capacity_stripes
        WHERE venue_id = p_venue_id AND scope = p_scope AND service_day = p_day AND stripe > start
          AND cap = p_cap AND epoch = p_epoch AND used + p_take <= share
        ORDER BY stripe
        LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
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
