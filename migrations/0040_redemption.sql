-- The redemption ledger and the counters that enforce every cap. PostgreSQL is the authority:
-- single use by primary key, caps by conditional upsert, all in the transaction that records
-- the redemption. Redis only ever holds caches of what is committed here.

-- A code's jti is consumed by the scan that it was accepted for, and by nothing else.
CREATE TABLE consumed_codes (
    jti           text PRIMARY KEY,
    redemption_id uuid NOT NULL,
    consumed_at   timestamptz NOT NULL DEFAULT now()
);

-- The ledger: accepted redemptions and their reversals, one row per event, never changed.
CREATE TABLE redemptions (
    id              uuid PRIMARY KEY,
    seq             bigserial NOT NULL UNIQUE,         -- total order, for paging and audit
    kind            text NOT NULL CHECK (kind IN ('redemption', 'reversal')),
    reverses        uuid UNIQUE REFERENCES redemptions (id),  -- a redemption is reversed at most once
    at              timestamptz NOT NULL DEFAULT now(),
    service_day     date NOT NULL,                     -- the Asia/Shanghai day it counts on
    person_id       uuid NOT NULL,
    benefit_id      uuid NOT NULL,
    benefit_version integer NOT NULL,
    benefit_code    text NOT NULL,
    venue_id        uuid NOT NULL,
    merchant_id     uuid NOT NULL,
    device_id       uuid,
    staff_id        uuid,
    jti             text,                              -- the code consumed (redemptions only)
    code_source     text CHECK (code_source IN ('cj', 'suishen')),
    companions      integer NOT NULL DEFAULT 0 CHECK (companions >= 0),
    value_kind      text NOT NULL,
    value_fen       bigint NOT NULL DEFAULT 0,         -- value granted, for settlement
    period_keys     text[] NOT NULL DEFAULT '{}',      -- the per-person cap buckets it counted in
    priority        boolean NOT NULL DEFAULT false,
    reason          text,                              -- why it was reversed (reversals only)
    CHECK ((kind = 'reversal') = (reverses IS NOT NULL)),
    CHECK (kind = 'reversal' OR jti IS NOT NULL)
);
CREATE INDEX redemptions_person ON redemptions (person_id, at DESC);
CREATE INDEX redemptions_venue_day ON redemptions (venue_id, service_day);
CREATE INDEX redemptions_merchant_at ON redemptions (merchant_id, at DESC);

-- Every refused scan, for the venue's history and for audits (no personal data beyond the id).
CREATE TABLE rejected_scans (
    id          uuid PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    service_day date NOT NULL,
    reason      text NOT NULL,
    venue_id    uuid NOT NULL,
    merchant_id uuid NOT NULL,
    device_id   uuid,
    staff_id    uuid,
    person_id   uuid,
    benefit_id  uuid
);
CREATE INDEX rejected_scans_venue_day ON rejected_scans (venue_id, service_day);
CREATE INDEX rejected_scans_merchant_at ON rejected_scans (merchant_id, at DESC);

CREATE TRIGGER consumed_codes_append_only BEFORE UPDATE OR DELETE ON consumed_codes
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER redemptions_append_only BEFORE UPDATE OR DELETE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER rejected_scans_append_only BEFORE UPDATE OR DELETE ON rejected_scans
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER consumed_codes_no_truncate BEFORE TRUNCATE ON consumed_codes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER redemptions_no_truncate BEFORE TRUNCATE ON redemptions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER rejected_scans_no_truncate BEFORE TRUNCATE ON rejected_scans
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- Per person, per benefit, per period: how many redemptions count now (reversals give back).
CREATE TABLE quota_usage (
    person_id  uuid NOT NULL,
    benefit_id uuid NOT NULL,
    period_key text NOT NULL,                          -- d:2026-11-27, w:2026-W48, m:2026-11, y:2026
    used       integer NOT NULL CHECK (used >= 0),
    PRIMARY KEY (person_id, benefit_id, period_key)
);

-- Per venue, per day: people admitted under a benefit (holders and companions).
CREATE TABLE venue_day_usage (
    venue_id    uuid NOT NULL,
    service_day date NOT NULL,
    used        integer NOT NULL CHECK (used >= 0),
    PRIMARY KEY (venue_id, service_day)
);

-- The first answer to each (caller, Idempotency-Key), kept so a retry gets the same answer.
CREATE TABLE idempotency_keys (
    caller      text NOT NULL,                         -- device:<id> or staff:<id>
    key         text NOT NULL,
    fingerprint bytea NOT NULL,                        -- SHA-256 of method, path and body
    status      integer NOT NULL,
    response    bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Record an accepted redemption, or say which guard refused it. One statement, so one round
-- trip: the code is consumed, every cap is taken by a conditional upsert, and the ledger row is
-- written, or nothing is (the EXCEPTION block rolls everything back to the block's start).
-- Caps are checked under the row locks of READ COMMITTED upserts: concurrent scans of one
-- person or venue queue on the counter row, so no interleaving can overrun a cap.
CREATE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer
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
        RETURN 'accepted';
    EXCEPTION
        WHEN SQLSTATE 'CJQ00' THEN RETURN 'replayed';
        WHEN SQLSTATE 'CJQ01' THEN RETURN 'quota_exhausted';
        WHEN SQLSTATE 'CJQ02' THEN RETURN 'venue_capacity_reached';
    END;
END;
$$;
