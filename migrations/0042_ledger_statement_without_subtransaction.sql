-- The accept path as one statement, faster: no EXCEPTION block (each call opened a
-- subtransaction) and the venue's day row, the one row every scan at a venue shares, is taken
-- last, so it is locked only from that update to the commit. It also checks the benefit itself:
-- still active, still offered at the venue and still at the version the rules were evaluated
-- with, so the scan service may keep a venue's benefit list in memory for a few seconds.
--
-- A refusal now raises its SQLSTATE and the whole statement rolls back (nothing written); the
-- caller maps the code (benefits/redemption/db.py):
--   CJQ00 replayed, CJQ01 quota_exhausted, CJQ02 venue_capacity_reached, CJQ03 idempotency_conflict,
--   CJQ04 stale_benefit (the benefit changed: decide again).
-- The caller must not be inside a transaction of its own (the scan service never is).
CREATE OR REPLACE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    admitted integer := 1 + p_companions;
BEGIN
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
    INSERT INTO venue_day_usage AS v (venue_id, service_day, used)
    SELECT p_venue_id, p_service_day, admitted WHERE p_venue_capacity IS NULL OR admitted <= p_venue_capacity
    ON CONFLICT (venue_id, service_day)
        DO UPDATE SET used = v.used + admitted
        WHERE p_venue_capacity IS NULL OR v.used + admitted <= p_venue_capacity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'venue capacity reached' USING ERRCODE = 'CJQ02';
    END IF;
    RETURN 'accepted';
END;
$$;
