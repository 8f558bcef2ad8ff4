-- The stats rollups over the partitioned ledger (0050 made them empty), filled in a transaction of
-- their own: REFRESH without CONCURRENTLY (they hold nothing yet) takes ACCESS EXCLUSIVE on each
-- rollup and only ACCESS SHARE on the ledger, so scans are recorded meanwhile; stats readers wait
-- for it (serve starts only once every migration is applied). Daily ones first: the monthly ones
-- and stats_days are built from stats_daily.
REFRESH MATERIALIZED VIEW stats_daily;
REFRESH MATERIALIZED VIEW stats_daily_category;
REFRESH MATERIALIZED VIEW stats_refusals_daily;
REFRESH MATERIALIZED VIEW stats_monthly;
REFRESH MATERIALIZED VIEW stats_category_monthly;
REFRESH MATERIALIZED VIEW stats_refusals_monthly;
REFRESH MATERIALIZED VIEW stats_days;
REFRESH MATERIALIZED VIEW stats_holders;
REFRESH MATERIALIZED VIEW stats_ratings_daily;
