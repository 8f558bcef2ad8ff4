-- 差评 cases get a due time (issue 12): opened + CHONGJUN_RATING_CASE_DUE_HOURS (default 5 days),
-- set by the service when it opens the case. Open past it = overdue, escalated to the city.
ALTER TABLE rating_cases ADD COLUMN due_at timestamptz;
UPDATE rating_cases SET due_at = opened_at + interval '5 days';
ALTER TABLE rating_cases
    ALTER COLUMN due_at SET NOT NULL,
    ALTER COLUMN due_at SET DEFAULT now() + interval '5 days';
CREATE INDEX rating_cases_open_due ON rating_cases (due_at) WHERE status = 'open';
CREATE INDEX ratings_merchant_at ON ratings (merchant_id, created_at DESC, id DESC);

-- Operating statistics (第二十三条): daily rollups of the ledger and of refused scans, refreshed
-- concurrently (readers never wait) by refresh_stats(), which runs as the owner so that the
-- service's role can call it. Nothing on the scan path writes them.
CREATE MATERIALIZED VIEW stats_daily AS
SELECT r.service_day, v.district, v.domain, r.benefit_id, r.kind,
       count(*)::bigint AS events, sum(r.companions)::bigint AS companions,
       count(*) FILTER (WHERE r.priority)::bigint AS priority
  FROM redemptions r JOIN venues v ON v.id = r.venue_id
 GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_daily_key ON stats_daily (service_day, district, domain, benefit_id, kind);

CREATE MATERIALIZED VIEW stats_daily_category AS
SELECT r.service_day, v.district, v.domain, r.benefit_id, c.category, count(*)::bigint AS events
  FROM redemptions r
  JOIN venues v ON v.id = r.venue_id
  JOIN people p ON p.id = r.person_id
 CROSS JOIN LATERAL unnest(p.categories) AS c (category)
 WHERE r.kind = 'redemption'
 GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_daily_category_key ON stats_daily_category (service_day, district, domain, benefit_id, category);

CREATE MATERIALIZED VIEW stats_refusals_daily AS
SELECT s.service_day, v.district, v.domain, s.benefit_id, s.reason, count(*)::bigint AS events
  FROM rejected_scans s JOIN venues v ON v.id = s.venue_id
 GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_refusals_daily_key ON stats_refusals_daily (service_day, district, domain, benefit_id, reason);

-- Distinct holders per benefit in a window, read from the index alone.
CREATE INDEX redemptions_day_benefit_person ON redemptions (service_day, benefit_id, person_id) WHERE kind = 'redemption';

-- 免申即享 reach: people eligible now per benefit and residence district ('' = none), written
-- whole by the service (benefits.stats.refresh_stats).
CREATE TABLE stats_reach (
    benefit_id uuid NOT NULL,
    district   text NOT NULL,
    eligible   bigint NOT NULL CHECK (eligible >= 0),
    PRIMARY KEY (benefit_id, district)
);

CREATE TABLE stats_refreshed (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    rollups_at timestamptz,
    reach_at   timestamptz
);

CREATE FUNCTION refresh_stats() RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7245113901229);
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_daily;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_daily_category;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_refusals_daily;
    INSERT INTO stats_refreshed (one, rollups_at) VALUES (true, now())
        ON CONFLICT (one) DO UPDATE SET rollups_at = excluded.rollups_at;
    RETURN now();
END;
$$;
GRANT SELECT ON stats_daily, stats_daily_category, stats_refusals_daily TO chongjun_app;
