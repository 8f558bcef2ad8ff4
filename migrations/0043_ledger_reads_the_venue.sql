-- The ledger statement reads the venue itself: its daily capacity (the smaller of it and the
-- benefit's own per-venue capacity, which is what the caller now passes as p_venue_capacity) and
-- its status. The scan service keeps a venue in memory for a few seconds; before this, a lowered
-- capacity could be overrun and a raised one refused for that long (found in review). A closed
-- or missing venue raises CJQ04 (stale): the service reads the venue again and refuses (403).
--
-- Deploy note: 0042 and this file change how refusals are reported (raised SQLSTATEs); run them
-- with the release that maps them (benefits/redemption/db.py), not under older workers.
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
    capacity integer;
    venue_status text;
BEGIN
    -- The venue's own capacity and status, read here: the scan service may hold the venue in
    -- memory for a few seconds, and a lowered capacity must count at once. LEAST skips NULLs.
    SELECT least(v.daily_capacity, p_venue_capacity), v.status INTO capacity, venue_status
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
    INSERT INTO venue_day_usage AS v (venue_id, service_day, used)
    SELECT p_venue_id, p_service_day, admitted WHERE capacity IS NULL OR admitted <= capacity
    ON CONFLICT (venue_id, service_day)
        DO UPDATE SET used = v.used + admitted
        WHERE capacity IS NULL OR v.used + admitted <= capacity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'venue capacity reached' USING ERRCODE = 'CJQ02';
    END IF;
    RETURN 'accepted';
END;
$$;
