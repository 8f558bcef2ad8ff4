-- The ledger and the other history tables are read and append only for the service's role
-- (chongjun_app, migration 0004): it cannot UPDATE, DELETE or TRUNCATE them, and as it owns
-- none of them it cannot disable their append-only triggers either.
REVOKE UPDATE, DELETE, TRUNCATE ON
    redemptions, rejected_scans, consumed_codes, benefit_versions, ratings
    FROM chongjun_app;
