-- The ledger statement for a batch of scans (issue 16, foundation/batching.py).
--
-- A batch runs many calls of the ledger statement in one transaction. A refusal must undo only
-- its own call and answer, not abort the batch: `record_redemption_or_refusal` runs
-- `record_redemption` in a block of its own (a subtransaction) and returns its refusal's
-- SQLSTATE (CJQ00-CJQ05, migrations 0042/0044) instead of raising it; any other error still
-- raises, and the batch is then run call by call. 'accepted' as before.
--
-- The capacity's fast path starts its walk over the stripes at a stripe given by the
-- transaction, not at random, so that a batch's scans share one stripe (see capacity_take).

CREATE FUNCTION record_redemption_or_refusal(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false, p_decided_at timestamptz DEFAULT NULL, p_code_expires_at timestamptz DEFAULT NULL
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN record_redemption(
        p_id => p_id, p_jti => p_jti, p_code_source => p_code_source, p_service_day => p_service_day,
        p_person_id => p_person_id, p_benefit_id => p_benefit_id, p_benefit_version => p_benefit_version,
        p_benefit_code => p_benefit_code, p_venue_id => p_venue_id, p_merchant_id => p_merchant_id,
        p_device_id => p_device_id, p_staff_id => p_staff_id, p_companions => p_companions,
        p_value_kind => p_value_kind, p_value_fen => p_value_fen, p_priority => p_priority,
        p_period_keys => p_period_keys, p_period_caps => p_period_caps, p_venue_capacity => p_venue_capacity,
        p_idem_caller => p_idem_caller, p_idem_key => p_idem_key, p_idem_fingerprint => p_idem_fingerprint,
        p_idem_response => p_idem_response, p_slow => p_slow, p_decided_at => p_decided_at,
        p_code_expires_at => p_code_expires_at
    );
EXCEPTION
    WHEN SQLSTATE 'CJQ00' OR SQLSTATE 'CJQ01' OR SQLSTATE 'CJQ02' OR SQLSTATE 'CJQ03' OR SQLSTATE 'CJQ04'
      OR SQLSTATE 'CJQ05' THEN
        RETURN SQLSTATE;
END;
$$;

CREATE OR REPLACE FUNCTION capacity_take(
    p_venue_id uuid, p_scope uuid, p_day date, p_cap integer, p_epoch text, p_take integer, p_slow boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    -- The walk starts at a stripe of this transaction (its id modulo 64): scans in transactions
    -- of their own spread over the stripes as consecutive ids do, and the scans of one batch
    -- (one transaction, foundation/batching.py) all start at the stripe the first of them
    -- locked, which its own lock does not skip: a batch holds one stripe, not one per scan.
    start smallint := (pg_current_xact_id()::text::bigint % 64)::smallint;
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
