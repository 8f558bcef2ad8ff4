-- The scan's person from a worker's cache (issue 16, identity.PersonReads).
--
-- A busy venue sees the same people again and again (8月1日: a few hundred returning people at
-- one gate). Their roster row changes rarely, so a worker keeps each person it read for a
-- while and decides from that copy; the ledger statement then checks, in the same statement
-- that records the scan, that the person is still exactly the one decided with:
-- `person_version` (the row versions of the person, their family ties and the tied members the
-- rules read) must equal the one read with the copy, else it refuses with CJQ06 ('person
-- changed', nothing written) and the scan is decided once more from fresh reads. Without a
-- version (NULL: a person read fresh, an offline decision) nothing more is checked.
--
-- `record_redemption` and `record_redemption_or_refusal` take `p_person_version` as their last
-- argument (both dropped and created anew: an overload with one more defaulted argument would
-- make named calls ambiguous). The body is 0050's but for that check.

CREATE FUNCTION person_version(p_person_id uuid) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- xmin: the transaction that wrote the row version; any update gives a new one. The ties
    -- in id order, each with the version of the tie and of the member it names (by id or by
    -- the blind index, as the person read joins them).
    RETURN (
        SELECT md5(p.xmin::text || ':' || coalesce((
            SELECT string_agg(r.id::text || '/' || r.xmin::text || '/' || coalesce(by_id.xmin::text, '-')
                              || '/' || coalesce(by_index.xmin::text, '-'), ',' ORDER BY r.id)
            FROM person_relations r
            LEFT JOIN people by_id ON by_id.id = r.member_person_id
            LEFT JOIN people by_index ON by_index.id_hmac = r.member_id_hmac
            WHERE r.person_id = p.id), ''))
        FROM people p WHERE p.id = p_person_id
    );
END;
$$;

DROP FUNCTION record_redemption_or_refusal(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer, text, text, bytea, bytea, boolean, timestamptz, timestamptz
);

DROP FUNCTION record_redemption(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer, text, text, bytea, bytea, boolean, timestamptz, timestamptz
);

CREATE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false, p_decided_at timestamptz DEFAULT NULL, p_code_expires_at timestamptz DEFAULT NULL,
    p_person_version text DEFAULT NULL
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    admitted integer := 1 + p_companions;
    venue_cap integer;
    venue_epoch text;
    venue_status text;
BEGIN
    IF p_code_expires_at IS NULL THEN  -- the code's partition: never guessed from the clock
        RAISE EXCEPTION 'record_redemption needs the code''s expiry' USING ERRCODE = '22004';
    END IF;
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
    -- The person the rules were evaluated with, when the scan service took them from its cache:
    -- changed since (a suspended card, other categories, a tie) → decided again from fresh reads.
    IF p_person_version IS NOT NULL AND person_version(p_person_id) IS DISTINCT FROM p_person_version THEN
        RAISE EXCEPTION 'person changed' USING ERRCODE = 'CJQ06';
    END IF;
    -- Single use across months: the jti's partition is its own expiry's month (see the top).
    INSERT INTO consumed_codes (jti, redemption_id, code_month)
    VALUES (p_jti, p_id, date_trunc('month', p_code_expires_at AT TIME ZONE 'Asia/Shanghai')::date)
    ON CONFLICT (jti, code_month) DO NOTHING;
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
        period_keys, priority, decided_at
    ) VALUES (
        p_id, 'redemption', p_service_day, p_person_id, p_benefit_id, p_benefit_version, p_benefit_code,
        p_venue_id, p_merchant_id, p_device_id, p_staff_id, p_jti, p_code_source, p_companions,
        p_value_kind, p_value_fen, p_period_keys, p_priority, p_decided_at
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

CREATE FUNCTION record_redemption_or_refusal(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false, p_decided_at timestamptz DEFAULT NULL, p_code_expires_at timestamptz DEFAULT NULL,
    p_person_version text DEFAULT NULL
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
        p_code_expires_at => p_code_expires_at, p_person_version => p_person_version
    );
EXCEPTION
    WHEN SQLSTATE 'CJQ00' OR SQLSTATE 'CJQ01' OR SQLSTATE 'CJQ02' OR SQLSTATE 'CJQ03' OR SQLSTATE 'CJQ04'
      OR SQLSTATE 'CJQ05' OR SQLSTATE 'CJQ06' THEN
        RETURN SQLSTATE;
END;
$$;
