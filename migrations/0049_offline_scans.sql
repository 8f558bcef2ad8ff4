-- Gates that keep working offline (issue 15 §4, benefits/redemption/offline.py).
--
-- A device that lost the network decides from a signed offline bundle and uploads its decisions
-- later (POST /v1/scans/offline). Each uploaded item is reconciled once, per (device, local_id):
--
-- * recorded: the ledger row is written by the one ledger statement, `record_redemption`, like an
--   online scan (single use, every cap, capacities), and carries the device's decision time in
--   the new column `redemptions.decided_at` (NULL: decided online, at `at`). Its service day and
--   cap buckets are those of the decision time.
-- * conflict: the code was already used, or a cap (or the offline budget) was already reached,
--   when the upload came: nothing enters the ledger, the conflict is kept here with its reason.
-- * rejected: the item is invalid (forged code, not eligible, ...), kept here with its reason.
--
-- `offline_scans` is the record of every uploaded item and the stored answer a re-upload gets:
-- the recorded item's row is written in the ledger statement itself, so the two commit together.

ALTER TABLE redemptions ADD COLUMN decided_at timestamptz;

CREATE TABLE offline_scans (
    id            uuid PRIMARY KEY,
    device_id     uuid NOT NULL,
    local_id      text NOT NULL,                 -- the device's own id of the decision
    fingerprint   bytea NOT NULL,                -- SHA-256 of the item: the same local_id with another body is refused
    outcome       text NOT NULL CHECK (outcome IN ('recorded', 'conflict', 'rejected')),
    reason        text NOT NULL,                 -- a reason code of benefits/redemption/reasons.py
    redemption_id uuid UNIQUE REFERENCES redemptions (id),
    venue_id      uuid NOT NULL,
    merchant_id   uuid NOT NULL,
    benefit_id    uuid,
    person_id     uuid,
    companions    integer NOT NULL DEFAULT 0 CHECK (companions >= 0),
    decided_at    timestamptz NOT NULL,
    service_day   date NOT NULL,                 -- the Asia/Shanghai day of decided_at
    uploaded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (device_id, local_id),
    CHECK ((outcome = 'recorded') = (redemption_id IS NOT NULL))
);
CREATE INDEX offline_scans_merchant_at ON offline_scans (merchant_id, uploaded_at DESC, id DESC);
CREATE INDEX offline_scans_venue_day ON offline_scans (venue_id, service_day);
CREATE INDEX offline_scans_device_budget ON offline_scans (device_id, decided_at) WHERE outcome = 'recorded';

CREATE TRIGGER offline_scans_append_only BEFORE UPDATE OR DELETE ON offline_scans
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER offline_scans_no_truncate BEFORE TRUNCATE ON offline_scans
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
REVOKE UPDATE, DELETE, TRUNCATE ON offline_scans FROM chongjun_app;

-- The ledger statement of 0044 with one more (optional) parameter: the offline decision time.
DROP FUNCTION record_redemption(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer, text, text, bytea, bytea, boolean
);

CREATE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false, p_decided_at timestamptz DEFAULT NULL
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
