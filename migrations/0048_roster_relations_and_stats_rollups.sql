-- Family ties from the roster (issue 12): the roster's `relations` column names each serviceman
-- by ID number, stored as its blind index (the same keyed HMAC as people.id_hmac, never the
-- number), so a tie holds whether or not the serviceman is enrolled, and finds them when they are.
-- `source` tells the roster's ties (replaced by each re-import of the person) from an admin's.
ALTER TABLE person_relations
    ADD COLUMN member_id_hmac bytea CHECK (length(member_id_hmac) = 32),
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('roster', 'admin')),
    ADD CHECK (source <> 'roster' OR member_id_hmac IS NOT NULL);
CREATE UNIQUE INDEX person_relations_roster_tie ON person_relations (person_id, relation, member_id_hmac)
    WHERE source = 'roster';
CREATE INDEX person_relations_member_index ON person_relations (member_id_hmac) WHERE member_id_hmac IS NOT NULL;

-- Statistics without reading the ledger at request time (issue 12, `chongjun bench stats`):
--
-- stats_holders answers "how many distinct people used it in [from, to]" exactly from a few
-- thousand rows. Each day a person used something is a visit; within a scope (a benefit or all
-- of them, at venues of one district and/or domain or anywhere), a visit counts for a window
-- when it is the person's first in that window, i.e. when their previous visit in the same
-- scope (`prev`, '-infinity' for none) is before the window starts. So
--     used(from, to) = sum(holders) WHERE day BETWEEN from AND to AND prev < from
-- for the scope the query asks for. `scope` names the scope's dimensions: b(enefit),
-- d(istrict), m (domain); a dimension not in the scope holds '' (the nil uuid for benefit_id).
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
  FROM spans GROUP BY 1, 2, 3, 4, 5, 6;
CREATE UNIQUE INDEX stats_holders_key ON stats_holders (scope, day, benefit_id, district, domain, prev);

-- 好差评 per Shanghai day of the rating, venue district and domain, benefit and stars: the
-- count, average and 差评 share of a window without joining the ledger.
CREATE MATERIALIZED VIEW stats_ratings_daily AS
SELECT (g.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day, v.district, v.domain, r.benefit_id, g.stars,
       count(*)::bigint AS ratings
  FROM ratings g JOIN venues v ON v.id = g.venue_id JOIN redemptions r ON r.id = g.redemption_id
 GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_ratings_daily_key ON stats_ratings_daily (day, district, domain, benefit_id, stars);

-- A window's whole months are read from month rollups of the daily ones, its ragged ends from
-- the daily ones, and its days from stats_days (the city's, or one district's, '' = the city):
-- a year is a few thousand rows whatever the ledger's size. Built from the daily views, after
-- them, in the same refresh.
CREATE MATERIALIZED VIEW stats_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, kind,
       sum(events)::bigint AS events, sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
  FROM stats_daily GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_monthly_key ON stats_monthly (month, district, domain, benefit_id, kind);

CREATE MATERIALIZED VIEW stats_category_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, category, sum(events)::bigint AS events
  FROM stats_daily_category GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_category_monthly_key ON stats_category_monthly (month, district, domain, benefit_id, category);

CREATE MATERIALIZED VIEW stats_refusals_monthly AS
SELECT date_trunc('month', service_day)::date AS month, district, domain, benefit_id, reason, sum(events)::bigint AS events
  FROM stats_refusals_daily GROUP BY 1, 2, 3, 4, 5;
CREATE UNIQUE INDEX stats_refusals_monthly_key ON stats_refusals_monthly (month, district, domain, benefit_id, reason);

CREATE MATERIALIZED VIEW stats_days AS
SELECT service_day, coalesce(district, '') AS district, kind,
       sum(events)::bigint AS events, sum(companions)::bigint AS companions, sum(priority)::bigint AS priority
  FROM stats_daily GROUP BY GROUPING SETS ((service_day, kind), (service_day, district, kind));
CREATE UNIQUE INDEX stats_days_key ON stats_days (district, service_day, kind);

CREATE OR REPLACE FUNCTION refresh_stats() RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7245113901229);
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_daily;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_daily_category;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_refusals_daily;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_monthly;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_category_monthly;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_refusals_monthly;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_days;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_holders;
    REFRESH MATERIALIZED VIEW CONCURRENTLY stats_ratings_daily;
    INSERT INTO stats_refreshed (one, rollups_at) VALUES (true, now())
        ON CONFLICT (one) DO UPDATE SET rollups_at = excluded.rollups_at;
    RETURN now();
END;
$$;
GRANT SELECT ON stats_holders, stats_ratings_daily, stats_monthly, stats_category_monthly, stats_refusals_monthly, stats_days
    TO chongjun_app;
