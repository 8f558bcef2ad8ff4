-- The data-quality monitor runs once per interval for the whole service, not once per worker
-- (issue 16).
--
-- Every worker's timer ran the checks every CHONGJUN_QUALITY_INTERVAL_SECONDS (60) under a
-- try-lock, which only kept two runs from overlapping: N workers ran them N times a minute.
-- `venue.refusal_spike` reads eight days of the ledger and of refused scans: 361 ms of
-- PostgreSQL CPU with 250,000 ledger rows on the dev machine, and it grows with the ledger, on
-- the primary, in the busiest hour. A run notes its time here, under the same lock, and a
-- timer that finds a run within its interval skips (exchange.run_quality_checks).
CREATE TABLE quality_checked (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    at  timestamptz NOT NULL
);
