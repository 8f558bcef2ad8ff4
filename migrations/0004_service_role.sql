-- The service's own database role (issue 12): `chongjun_app` owns nothing and may only read and
-- append history. Migrations run as the schema owner (DATABASE_OWNER_URL); the service connects
-- as chongjun_app (DATABASE_URL), so it can neither UPDATE, DELETE nor TRUNCATE the audit log or
-- the ledger, nor disable their triggers (ALTER TABLE is the owner's).
--
-- The role is cluster-wide. It is created here when missing, if the migrating role may create
-- roles (the embedded default and a superuser may); otherwise create it first:
--     CREATE ROLE chongjun_app LOGIN PASSWORD '...';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chongjun_app') THEN
        CREATE ROLE chongjun_app LOGIN;
    END IF;
END
$$;

-- Nobody but the owner creates objects in the schema (PostgreSQL < 15 let every role).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO chongjun_app;

-- Every table: read and write; every sequence: use.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chongjun_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chongjun_app;
-- Tables later migrations create get the same; a migration that creates a history table revokes
-- UPDATE and DELETE on it from chongjun_app, as below.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chongjun_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO chongjun_app;

-- History: read and append only (the ledger's tables come later: 0045 revokes on them).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_checkpoints FROM chongjun_app;
-- Moved only by the owner's SECURITY DEFINER functions of 0002; the runner's own table.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_head, schema_migrations FROM chongjun_app;
