-- The ledger partitioned by month (issue 16 §5): `redemptions`, `rejected_scans` and
-- `consumed_codes` become PostgreSQL declarative RANGE partitions, one per Asia/Shanghai month,
-- plus a DEFAULT partition each, so a row of a month nobody created a partition for still goes
-- in (a scan never fails for want of a partition). The rows of today's tables move over; nothing
-- else about the ledger changes: one statement decides a scan, the tables stay append-only for
-- chongjun_app, the stats rollups read the same columns. docs/ledger-partitions.md says why each
-- key is what it is; in short:
--
-- * redemptions and rejected_scans: by `service_day` (the day every report, statement and rollup
--   filters on, so they read only the months asked for). The primary key becomes (id,
--   service_day): PostgreSQL wants the partition key in every unique key. Ids are made by the
--   server (random_uuid), never by a caller.
-- * consumed_codes: by `code_month`, the Shanghai month of the code's own expiry (`exp`, inside
--   the signed code). The same code always has the same expiry, so the same jti always lands in
--   the same partition, whenever and wherever it is presented: the primary key (jti, code_month)
--   is global single use. (Keyed by the scan's time instead, a code shown at 23:59:50 on the
--   30th and again at 00:00:10 on the 1st would go to two partitions and be accepted twice.)
--   A month of codes can be archived once all its codes are past any use: expired, and past the
--   offline upload window (`chongjun partitions detach` checks it).
-- * "reversed at most once" (was `reverses UNIQUE`): a reversal falls on its own service day, so
--   no key including the partition key can say it; the narrow, unpartitioned
--   `redemption_reversals` (redemption_id PRIMARY KEY) does, filled by a trigger on the ledger.
-- * Idempotency-Keys stay in `idempotency_keys` (caller, key): one table, pruned by age, so the
--   key is unique across months as before.
--
-- Rows of today's tables without a partition key of their own: a consumed code's month is taken
-- from `consumed_at` (its expiry was not stored). Sound, because a code is accepted within its
-- lifetime (at most 24 h for a city platform code): a row consumed more than that before this
-- migration can never be presented validly again. A row consumed within the last 25 h close to a
-- month's end might expire in the next month, so this migration refuses to run then (below).
--
-- Lock: runs in one transaction with ACCESS EXCLUSIVE on the three tables from the first
-- statement to the commit (the README gives the measured time per million rows). Stop the old
-- workers first: the ledger statement takes a new parameter (p_code_expires_at).

DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM consumed_codes
         WHERE consumed_at > now() - interval '25 hours'
           AND date_trunc('month', consumed_at AT TIME ZONE 'Asia/Shanghai')
               <> date_trunc('month', (consumed_at + interval '25 hours') AT TIME ZONE 'Asia/Shanghai')
    ) THEN
        RAISE EXCEPTION 'codes consumed in the last 25 hours may expire in the next month: run this migration again after %',
            (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') + interval '1 month' + interval '25 hours');
    END IF;
END
$$;

-- What reads the old tables by their identity: the rollups and the foreign keys to the ledger.
DROP MATERIALIZED VIEW stats_ratings_daily, stats_holders, stats_days, stats_refusals_monthly, stats_category_monthly,
    stats_monthly, stats_refusals_daily, stats_daily_category, stats_daily;
ALTER TABLE ratings DROP CONSTRAINT ratings_redemption_id_fkey;
ALTER TABLE offline_scans DROP CONSTRAINT offline_scans_redemption_id_fkey;

ALTER TABLE redemptions RENAME TO redemptions_unpartitioned;
ALTER TABLE rejected_scans RENAME TO rejected_scans_unpartitioned;
ALTER TABLE consumed_codes RENAME TO consumed_codes_unpartitioned;
ALTER SEQUENCE redemptions_seq_seq OWNED BY NONE;  -- kept: the new table takes its numbers from it

CREATE TABLE consumed_codes (
    jti           text NOT NULL,
    redemption_id uuid NOT NULL,
    consumed_at   timestamptz NOT NULL DEFAULT now(),
    code_month    date NOT NULL CHECK (extract(day FROM code_month) = 1)  -- the Shanghai month of the code's expiry
) PARTITION BY RANGE (code_month);

CREATE TABLE redemptions (
    id              uuid NOT NULL,
    seq             bigint NOT NULL DEFAULT nextval('redemptions_seq_seq'),  -- total order, for paging and audit
    kind            text NOT NULL CHECK (kind IN ('redemption', 'reversal')),
    reverses        uuid,                              -- at most once: redemption_reversals
    at              timestamptz NOT NULL DEFAULT now(),
    service_day     date NOT NULL,                     -- the Asia/Shanghai day it counts on; the partition key
    person_id       uuid NOT NULL,
    benefit_id      uuid NOT NULL,
    benefit_version integer NOT NULL,
    benefit_code    text NOT NULL,
    venue_id        uuid NOT NULL,
    merchant_id     uuid NOT NULL,
    device_id       uuid,
    staff_id        uuid,
    jti             text,
    code_source     text CHECK (code_source IN ('cj', 'suishen')),
    companions      integer NOT NULL DEFAULT 0 CHECK (companions >= 0),
    value_kind      text NOT NULL,
    value_fen       bigint NOT NULL DEFAULT 0,
    period_keys     text[] NOT NULL DEFAULT '{}',
    priority        boolean NOT NULL DEFAULT false,
    reason          text,
    decided_at      timestamptz,
    reverses_day    date,                              -- the service day of the redemption it reverses
    CHECK ((kind = 'reversal') = (reverses IS NOT NULL)),
    CHECK ((reverses IS NULL) = (reverses_day IS NULL)),
    CHECK (kind = 'reversal' OR jti IS NOT NULL)
) PARTITION BY RANGE (service_day);
ALTER SEQUENCE redemptions_seq_seq OWNED BY redemptions.seq;

CREATE TABLE rejected_scans (
    id          uuid NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    service_day date NOT NULL,
    reason      text NOT NULL,
    venue_id    uuid NOT NULL,
    merchant_id uuid NOT NULL,
    device_id   uuid,
    staff_id    uuid,
    person_id   uuid,
    benefit_id  uuid
) PARTITION BY RANGE (service_day);

CREATE TABLE consumed_codes_default PARTITION OF consumed_codes DEFAULT;
CREATE TABLE redemptions_default PARTITION OF redemptions DEFAULT;
CREATE TABLE rejected_scans_default PARTITION OF rejected_scans DEFAULT;

-- A redemption is reversed at most once, whatever month the reversal falls in.
CREATE TABLE redemption_reversals (
    redemption_id uuid PRIMARY KEY,
    reversal_id   uuid NOT NULL,
    reversal_day  date NOT NULL
);

-- The month partitions of the three tables: created as plain tables and attached (ATTACH takes
-- SHARE UPDATE EXCLUSIVE on the parent, so scans go on; CREATE ... PARTITION OF would take
-- ACCESS EXCLUSIVE). A month whose rows already went to the DEFAULT partition is left there
-- and named in the answer ('in-default:<table>_yYYYYmMM'): nothing is ever moved out of history.
-- Runs as the owner (SECURITY DEFINER), so the service may call it (`serve`, daily).
CREATE FUNCTION ledger_ensure_partitions(p_first date, p_last date) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    month date := date_trunc('month', p_first)::date;
    parent text;
    key text;
    part text;
    in_default boolean;
BEGIN
    IF p_last < p_first OR p_last > p_first + interval '10 years' THEN
        RAISE EXCEPTION 'partition range % .. % refused', p_first, p_last USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(7245113901231);  -- one creator at a time (every worker of serve runs it)
    WHILE month <= p_last LOOP
        FOREACH parent IN ARRAY ARRAY['redemptions', 'rejected_scans', 'consumed_codes'] LOOP
            key := CASE parent WHEN 'consumed_codes' THEN 'code_month' ELSE 'service_day' END;
            part := format('%s_y%sm%s', parent, to_char(month, 'YYYY'), to_char(month, 'MM'));
            CONTINUE WHEN to_regclass('public.' || quote_ident(part)) IS NOT NULL;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM public.%I WHERE %I >= $1 AND %I < $2)', parent || '_default', key, key)
                INTO in_default USING month, (month + interval '1 month')::date;
            IF in_default THEN
                RETURN NEXT 'in-default:' || part;
                CONTINUE;
            END IF;
            EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
            -- The bound as a constraint first, so ATTACH need not scan to prove it.
            EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I CHECK (%I >= %L AND %I < %L)', part, part || '_bound',
                key, month, key, (month + interval '1 month')::date);
            EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)', parent, part,
                month, (month + interval '1 month')::date);
            EXECUTE format('ALTER TABLE public.%I DROP CONSTRAINT %I', part, part || '_bound');
            PERFORM ledger_protect_partition(part);
            RETURN NEXT part;
        END LOOP;
        month := (month + interval '1 month')::date;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION ledger_ensure_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_ensure_partitions(date, date) TO chongjun_app;

-- A partition is history like its parent, also when addressed by its own name: the row triggers
-- come from the parent, a statement trigger (TRUNCATE) does not, and default privileges gave
-- chongjun_app UPDATE and DELETE on it.
CREATE FUNCTION ledger_protect_partition(p_part text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON public.%I FROM chongjun_app', p_part);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON public.%I FOR EACH STATEMENT EXECUTE FUNCTION public.refuse_history_change()',
        p_part || '_no_truncate', p_part);
END;
$$;
REVOKE ALL ON FUNCTION ledger_protect_partition(text) FROM PUBLIC;

-- Detach every month partition of the three tables that ends on or before p_before, for
-- archiving: the detached tables keep their names, are no longer part of the ledger, and are the
-- owner's alone (chongjun_app loses every privilege on them). The owner's only (not granted):
-- taking months out of the ledger is an operator's act. The caller checks the month is past use.
-- DETACH takes ACCESS EXCLUSIVE on the parent for a moment (CONCURRENTLY is not possible with a
-- DEFAULT partition), so a lock_timeout makes it give up rather than hold scans up.
CREATE FUNCTION ledger_detach_partitions(p_before date) RETURNS SETOF text
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    r record;
BEGIN
    IF p_before <> date_trunc('month', p_before) THEN
        RAISE EXCEPTION 'detach before the first day of a month, not %', p_before USING ERRCODE = '22023';
    END IF;
    SET LOCAL lock_timeout = '5s';
    FOR r IN
        SELECT c.relname AS part, p.relname AS parent
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname IN ('redemptions', 'rejected_scans', 'consumed_codes')
           AND c.relname ~ '_y[0-9]{4}m[0-9]{2}$'
           AND make_date(substring(c.relname FROM '_y([0-9]{4})m')::int, substring(c.relname FROM 'm([0-9]{2})$')::int, 1)
               < p_before
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE public.%I DETACH PARTITION public.%I', r.parent, r.part);
        EXECUTE format('REVOKE ALL ON public.%I FROM chongjun_app', r.part);
        RETURN NEXT r.part;
    END LOOP;
END;
$$;
REVOKE ALL ON FUNCTION ledger_detach_partitions(date) FROM PUBLIC;

-- Months for every row there is, last month, this month and the next three.
SELECT ledger_ensure_partitions(
    least(
        (SELECT min(service_day) FROM redemptions_unpartitioned),
        (SELECT min(service_day) FROM rejected_scans_unpartitioned),
        (SELECT min((consumed_at AT TIME ZONE 'Asia/Shanghai')::date) FROM consumed_codes_unpartitioned),
        ((now() AT TIME ZONE 'Asia/Shanghai')::date - interval '1 month')::date
    ),
    ((now() AT TIME ZONE 'Asia/Shanghai')::date + interval '3 months')::date
);

-- The rows, every one (indexes and keys after: one sort per index instead of a row at a time).
INSERT INTO consumed_codes (jti, redemption_id, consumed_at, code_month)
SELECT jti, redemption_id, consumed_at, date_trunc('month', consumed_at AT TIME ZONE 'Asia/Shanghai')::date
  FROM consumed_codes_unpartitioned;
INSERT INTO redemptions (
    id, seq, kind, reverses, at, service_day, person_id, benefit_id, benefit_version, benefit_code, venue_id,
    merchant_id, device_id, staff_id, jti, code_source, companions, value_kind, value_fen, period_keys, priority,
    reason, decided_at, reverses_day
)
SELECT r.id, r.seq, r.kind, r.reverses, r.at, r.service_day, r.person_id, r.benefit_id, r.benefit_version,
       r.benefit_code, r.venue_id, r.merchant_id, r.device_id, r.staff_id, r.jti, r.code_source, r.companions,
       r.value_kind, r.value_fen, r.period_keys, r.priority, r.reason, r.decided_at, o.service_day
  FROM redemptions_unpartitioned r LEFT JOIN redemptions_unpartitioned o ON o.id = r.reverses;
INSERT INTO redemption_reversals (redemption_id, reversal_id, reversal_day)
SELECT reverses, id, service_day FROM redemptions_unpartitioned WHERE reverses IS NOT NULL;
INSERT INTO rejected_scans (id, at, service_day, reason, venue_id, merchant_id, device_id, staff_id, person_id, benefit_id)
SELECT id, at, service_day, reason, venue_id, merchant_id, device_id, staff_id, person_id, benefit_id
  FROM rejected_scans_unpartitioned;

DO $$
BEGIN
    IF (SELECT count(*) FROM redemptions) <> (SELECT count(*) FROM redemptions_unpartitioned)
       OR (SELECT count(*) FROM rejected_scans) <> (SELECT count(*) FROM rejected_scans_unpartitioned)
       OR (SELECT count(*) FROM consumed_codes) <> (SELECT count(*) FROM consumed_codes_unpartitioned) THEN
        RAISE EXCEPTION 'rows were lost moving the ledger';
    END IF;
END
$$;

DROP TABLE redemptions_unpartitioned, rejected_scans_unpartitioned, consumed_codes_unpartitioned;

-- Keys and indexes (each builds on every partition), named as before.
ALTER TABLE consumed_codes ADD CONSTRAINT consumed_codes_pkey PRIMARY KEY (jti, code_month);
ALTER TABLE redemptions ADD CONSTRAINT redemptions_pkey PRIMARY KEY (id, service_day);
ALTER TABLE rejected_scans ADD CONSTRAINT rejected_scans_pkey PRIMARY KEY (id, service_day);
CREATE INDEX redemptions_seq ON redemptions (seq);
CREATE INDEX redemptions_reverses ON redemptions (reverses) WHERE reverses IS NOT NULL;
CREATE INDEX redemptions_person ON redemptions (person_id, at DESC);
CREATE INDEX redemptions_venue_day ON redemptions (venue_id, service_day);
CREATE INDEX redemptions_merchant_at ON redemptions (merchant_id, at DESC);
CREATE INDEX redemptions_day_benefit_person ON redemptions (service_day, benefit_id, person_id) WHERE kind = 'redemption';
CREATE INDEX rejected_scans_venue_day ON rejected_scans (venue_id, service_day);
CREATE INDEX rejected_scans_merchant_at ON rejected_scans (merchant_id, at DESC);

-- Foreign keys to the ledger name its whole key. offline_scans.service_day is the recorded
-- redemption's own (both are the day of the decision: db.py writes them from one parameter).
ALTER TABLE ratings ADD COLUMN redemption_day date;
ALTER TABLE ratings DISABLE TRIGGER ratings_append_only;
UPDATE ratings g SET redemption_day = r.service_day FROM redemptions r WHERE r.id = g.redemption_id;
ALTER TABLE ratings ENABLE TRIGGER ratings_append_only;
ALTER TABLE ratings ALTER COLUMN redemption_day SET NOT NULL;
ALTER TABLE ratings ADD CONSTRAINT ratings_redemption_fkey
    FOREIGN KEY (redemption_id, redemption_day) REFERENCES redemptions (id, service_day);
ALTER TABLE offline_scans ADD CONSTRAINT offline_scans_redemption_fkey
    FOREIGN KEY (redemption_id, service_day) REFERENCES redemptions (id, service_day);

-- A rating names its visit by id; its day is the visit's, found here (one probe per month).
CREATE FUNCTION rating_redemption_day() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.redemption_day IS NULL THEN
        SELECT r.service_day INTO NEW.redemption_day FROM redemptions r WHERE r.id = NEW.redemption_id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ratings_redemption_day BEFORE INSERT ON ratings
    FOR EACH ROW EXECUTE FUNCTION rating_redemption_day();

-- A reversal: the redemption it reverses must exist (what the FK on `reverses` said; an FK
-- across months would keep a month from ever being archived while the next month holds a
-- reversal of it), and takes that redemption's one row in redemption_reversals. When another
-- reversal holds it, the row is not written (what `ON CONFLICT (reverses) DO NOTHING` did):
-- db.insert_reversal then gets no row back. Accepts (reverses IS NULL) never run it.
CREATE FUNCTION ledger_claim_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original_day date;
BEGIN
    SELECT r.service_day INTO original_day FROM redemptions r
     WHERE r.id = NEW.reverses AND (NEW.reverses_day IS NULL OR r.service_day = NEW.reverses_day);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a reversal of a redemption that is not in the ledger' USING ERRCODE = '23503';
    END IF;
    NEW.reverses_day := original_day;
    INSERT INTO redemption_reversals (redemption_id, reversal_id, reversal_day)
    VALUES (NEW.reverses, NEW.id, NEW.service_day) ON CONFLICT (redemption_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER redemptions_claim_reversal BEFORE INSERT ON redemptions
    FOR EACH ROW WHEN (NEW.reverses IS NOT NULL) EXECUTE FUNCTION ledger_claim_reversal();

-- Append-only as before: row triggers on the parents reach every partition, present and future;
-- the statement trigger against TRUNCATE is on each partition too (ledger_protect_partition).
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
CREATE TRIGGER redemption_reversals_append_only BEFORE UPDATE OR DELETE ON redemption_reversals
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER redemption_reversals_no_truncate BEFORE TRUNCATE ON redemption_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
SELECT ledger_protect_partition(p) FROM unnest(ARRAY['consumed_codes_default', 'redemptions_default', 'rejected_scans_default']) AS p;
REVOKE UPDATE, DELETE, TRUNCATE ON redemptions, rejected_scans, consumed_codes, redemption_reversals FROM chongjun_app;
-- (the month partitions created above were protected by ledger_ensure_partitions; the default
-- privileges of 0004 gave the new parents SELECT and INSERT)

-- People a scope admitted on a day (0044), with "not reversed" from the narrow table: one probe
-- instead of one per month partition.
CREATE OR REPLACE FUNCTION capacity_used_in_ledger(p_venue_id uuid, p_scope uuid, p_day date) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(1 + r.companions), 0)::integer
    FROM redemptions r
    WHERE r.venue_id = p_venue_id AND r.service_day = p_day AND r.kind = 'redemption'
      AND (p_scope = p_venue_id OR r.benefit_id = p_scope)
      AND NOT EXISTS (SELECT 1 FROM redemption_reversals x WHERE x.redemption_id = r.id)
$$;

-- The ledger statement of 0049, with the code's expiry (its partition) and nothing else changed.
DROP FUNCTION record_redemption(
    uuid, text, text, date, uuid, uuid, integer, text, uuid, uuid, uuid, uuid,
    integer, text, bigint, boolean, text[], integer[], integer, text, text, bytea, bytea, boolean, timestamptz
);

CREATE FUNCTION record_redemption(
    p_id uuid, p_jti text, p_code_source text, p_service_day date,
    p_person_id uuid, p_benefit_id uuid, p_benefit_version integer, p_benefit_code text,
    p_venue_id uuid, p_merchant_id uuid, p_device_id uuid, p_staff_id uuid,
    p_companions integer, p_value_kind text, p_value_fen bigint, p_priority boolean,
    p_period_keys text[], p_period_caps integer[], p_venue_capacity integer,
    p_idem_caller text, p_idem_key text, p_idem_fingerprint bytea, p_idem_response bytea,
    p_slow boolean DEFAULT false, p_decided_at timestamptz DEFAULT NULL, p_code_expires_at timestamptz DEFAULT NULL
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

-- The rollups of 0046 and 0048, as they were, over the partitioned tables; empty here, filled by
-- 0053 in its own transaction right after this one, which holds no lock a scan waits for
-- (computing them here was half of this migration's time, all of it with the ledger locked).
CREATE MATERIALIZED VIEW stats_daily AS
SELECT r.service_day, v.district, v.domain, r.benefit_id, r.kind,
       count(*)::bigint AS events, sum(r.companions)::bigint AS companions,
       count(*) FILTER (WHERE r.priority)::bigint AS priority
  FROM redemptions r JOIN venues v ON v.id = r.venue_id
 GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_daily_key ON stats_daily (service_day, district, domain, benefit_id, kind);

CREATE MATERIALIZED VIEW stats_daily_category AS
SELECT r.service_day, v.district, v.domain, r.benefit_id, c.category, count(*)::bigint AS events
  FROM redemptions r
  JOIN venues v ON v.id = r.venue_id
  JOIN people p ON p.id = r.person_id
 CROSS JOIN LATERAL unnest(p.categories) AS c (category)
 WHERE r.kind = 'redemption'
 GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_daily_category_key ON stats_daily_category (service_day, district, domain, benefit_id, category);

CREATE MATERIALIZED VIEW stats_refusals_daily AS
SELECT s.service_day, v.district, v.domain, s.benefit_id, s.reason, count(*)::bigint AS events
  FROM rejected_scans s JOIN venues v ON v.id = s.venue_id
 GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_refusals_daily_key ON stats_refusals_daily (service_day, district, domain, benefit_id, reason);

CREATE MATERIALIZED VIEW stats_holders AS
WITH visits AS MATERIALIZED (
    SELECT DISTINCT r.person_id, r.benefit_id, v.district, v.domain, r.service_day AS day
      FROM redemptions r JOIN venues v ON v.id = r.venue_id
     WHERE r.kind = 'redemption'
), spans AS (
    SELECT 'bdm' AS scope, benefit_id, district, domain, day,
           lag(day) OVER (PARTITION BY person_id, benefit_id, district, domain ORDER BY day) AS prev
      FROM visits
    UNION ALL
    SELECT 'bd', benefit_id, district, '', day, lag(day) OVER (PARTITION BY person_id, benefit_id, district ORDER BY day)
      FROM (SELECT DISTINCT person_id, benefit_id, district, day FROM visits) x
    UNION ALL
    SELECT 'bm', benefit_id, '', domain, day, lag(day) OVER (PARTITION BY person_id, benefit_id, domain ORDER BY day)
      FROM (SELECT DISTINCT person_id, benefit_id, domain, day FROM visits) x
    UNION ALL
    SELECT 'b', benefit_id, '', '', day, lag(day) OVER (PARTITION BY person_id, benefit_id ORDER BY day)
      FROM (SELECT DISTINCT person_id, benefit_id, day FROM visits) x
    UNION ALL
    SELECT 'dm', '00000000-0000-0000-0000-000000000000'::uuid, district, domain, day,
           lag(day) OVER (PARTITION BY person_id, district, domain ORDER BY day)
      FROM (SELECT DISTINCT person_id, district, domain, day FROM visits) x
    UNION ALL
    SELECT 'd', '00000000-0000-0000-0000-000000000000'::uuid, district, '', day,
           lag(day) OVER (PARTITION BY person_id, district ORDER BY day)
      FROM (SELECT DISTINCT person_id, district, day FROM visits) x
    UNION ALL
    SELECT 'm', '00000000-0000-0000-0000-000000000000'::uuid, '', domain, day,
           lag(day) OVER (PARTITION BY person_id, domain ORDER BY day)
      FROM (SELECT DISTINCT person_id, domain, day FROM visits) x
    UNION ALL
    SELECT '', '00000000-0000-0000-0000-000000000000'::uuid, '', '', day, lag(day) OVER (PARTITION BY person_id ORDER BY day)
      FROM (SELECT DISTINCT person_id, day FROM visits) x
)
SELECT scope, benefit_id, district, domain, day, coalesce(prev, '-infinity') AS prev, count(*)::bigint AS holders
  FROM spans GROUP BY 1, 2, 3, 4, 5, 6
  WITH NO DATA;
CREATE UNIQUE INDEX stats_holders_key ON stats_holders (scope, day, benefit_id, district, domain, prev);

CREATE MATERIALIZED VIEW stats_ratings_daily AS
SELECT (g.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day, v.district, v.domain, r.benefit_id, g.stars,
       count(*)::bigint AS ratings
  FROM ratings g JOIN venues v ON v.id = g.venue_id JOIN redemptions r ON r.id = g.redemption_id
 GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_ratings_daily_key ON stats_ratings_daily (day, district, domain, benefit_id, stars);

CREATE MATERIALIZED VIEW stats_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, kind,
       sum(events)::bigint AS events, sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
  FROM stats_daily GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_monthly_key ON stats_monthly (month, district, domain, benefit_id, kind);

CREATE MATERIALIZED VIEW stats_category_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, category, sum(events)::bigint AS events
  FROM stats_daily_category GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_category_monthly_key ON stats_category_monthly (month, district, domain, benefit_id, category);

CREATE MATERIALIZED VIEW stats_refusals_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, reason, sum(events)::bigint AS events
  FROM stats_refusals_daily GROUP BY 1, 2, 3, 4, 5
  WITH NO DATA;
CREATE UNIQUE INDEX stats_refusals_monthly_key ON stats_refusals_monthly (month, district, domain, benefit_id, reason);

CREATE MATERIALIZED VIEW stats_days AS
SELECT service_day, coalesce(district, '') AS district, kind,
       sum(events)::bigint AS events, sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
  FROM stats_daily GROUP BY GROUPING SETS ((service_day, kind), (service_day, district, kind))
  WITH NO DATA;
CREATE UNIQUE INDEX stats_days_key ON stats_days (district, service_day, kind);

GRANT SELECT ON stats_daily, stats_daily_category, stats_refusals_daily, stats_holders, stats_ratings_daily,
    stats_monthly, stats_category_monthly, stats_refusals_monthly, stats_days TO chongjun_app;
