-- The accept path also stores the Idempotency-Key's first answer in the same statement as the
-- ledger row, so a retry after a lost response gets "accepted" again, never "replayed".
DROP FUNCTION record_redemption(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer
);

CREATE FUNCTION record_redemption(
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
    BEGIN
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
        INSERT INTO venue_day_usage AS v (venue_id, service_day, used)
        SELECT p_venue_id, p_service_day, admitted WHERE p_venue_capacity IS NULL OR admitted <= p_venue_capacity
        ON CONFLICT (venue_id, service_day)
            DO UPDATE SET used = v.used + admitted
            WHERE p_venue_capacity IS NULL OR v.used + admitted <= p_venue_capacity;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'venue capacity reached' USING ERRCODE = 'CJQ02';
        END IF;
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
        RETURN 'accepted';
    EXCEPTION
        WHEN SQLSTATE 'CJQ00' THEN RETURN 'replayed';
        WHEN SQLSTATE 'CJQ01' THEN RETURN 'quota_exhausted';
        WHEN SQLSTATE 'CJQ02' THEN RETURN 'venue_capacity_reached';
        WHEN SQLSTATE 'CJQ03' THEN RETURN 'idempotency_conflict';
    END;
END;
$$;

-- 好差评: one rating per redemption by its holder; a 差评 (stars <= 2) opens a case that an admin
-- must answer (seed policy 第十六条). Ratings are never edited; the case carries the handling.
CREATE TABLE ratings (
    id            uuid PRIMARY KEY,
    redemption_id uuid NOT NULL UNIQUE REFERENCES redemptions (id),
    person_id     uuid NOT NULL,
    venue_id      uuid NOT NULL,
    merchant_id   uuid NOT NULL,
    stars         smallint NOT NULL CHECK (stars BETWEEN 1 AND 5),
    comment       text CHECK (length(comment) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ratings_venue ON ratings (venue_id, created_at DESC);
CREATE TRIGGER ratings_append_only BEFORE UPDATE OR DELETE ON ratings
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

CREATE TABLE rating_cases (
    id          uuid PRIMARY KEY,
    rating_id   uuid NOT NULL UNIQUE REFERENCES ratings (id),
    district    text,                                  -- the venue's district, for district admins
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    reply       text,
    replied_by  uuid,
    closed_at   timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL AND reply IS NOT NULL))
);
CREATE INDEX rating_cases_open ON rating_cases (status, opened_at);
