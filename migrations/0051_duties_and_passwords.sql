-- 三员分立 and the 等保 level-3 password controls (issue 17; GB/T 22239-2019 level 3).
--
-- Duties follow roles: an admin's role names its scope and its one duty, and the duty is for the
-- account's life. city and district admins hold the system duty (district ones in their district),
-- the new security role the security duty, auditors the audit duty. admin_duties records it (who
-- gave it, when); the triggers below keep the record and the role agreeing, whatever the
-- application does, so no SQL can make an account hold two duties or move it to another one.
ALTER TABLE accounts DROP CONSTRAINT accounts_admin_role;
ALTER TABLE accounts ADD CONSTRAINT accounts_admin_role CHECK (
    kind <> 'admin' OR role IN ('city', 'district', 'security', 'auditor')
);

CREATE FUNCTION admin_duty_of_role(role text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE role WHEN 'city' THEN 'system' WHEN 'district' THEN 'system'
                     WHEN 'security' THEN 'security' WHEN 'auditor' THEN 'audit' END
$$;

-- A recorded duty that disagrees with its account's role (possible before this migration) stops
-- the migration: which one is right is the security administrator's call, not ours.
DO $$
DECLARE
    clash text;
BEGIN
    SELECT string_agg(a.username || ' (' || a.role || ' holds ' || d.duty || ')', ', ') INTO clash
      FROM admin_duties d JOIN accounts a ON a.id = d.account_id
     WHERE d.duty <> admin_duty_of_role(a.role);
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'admin duties disagree with roles: %', clash;
    END IF;
END $$;

INSERT INTO admin_duties (account_id, duty, assigned_by)
    SELECT id, admin_duty_of_role(role), NULL FROM accounts WHERE kind = 'admin'
    ON CONFLICT (account_id) DO NOTHING;

CREATE OR REPLACE FUNCTION admin_duty_needs_an_admin() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account_role text;
BEGIN
    SELECT role INTO account_role FROM accounts WHERE id = NEW.account_id AND kind = 'admin';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'a duty belongs to an admin account' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.duty IS DISTINCT FROM admin_duty_of_role(account_role) THEN
        RAISE EXCEPTION 'a % admin holds the % duty, not %', account_role, admin_duty_of_role(account_role), NEW.duty
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- A role may change within its duty (city <-> district), never to another duty.
CREATE FUNCTION admin_role_keeps_its_duty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.kind = 'admin' AND admin_duty_of_role(NEW.role) IS DISTINCT FROM admin_duty_of_role(OLD.role) THEN
        RAISE EXCEPTION 'an admin keeps the % duty for the account''s life', admin_duty_of_role(OLD.role)
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_admin_duty_for_life BEFORE UPDATE OF role, kind ON accounts
    FOR EACH ROW EXECUTE FUNCTION admin_role_keeps_its_duty();

-- The service records a duty once and never edits or removes it.
REVOKE UPDATE, DELETE, TRUNCATE ON admin_duties FROM chongjun_app;

-- Passwords (身份鉴别 a): an account made or reset by an admin must be given a new password by
-- its holder before it may log in; the last hashes are kept so that a change cannot reuse them.
ALTER TABLE accounts
    ADD COLUMN password_must_change boolean NOT NULL DEFAULT false,
    ADD COLUMN password_changed_at  timestamptz;

CREATE TABLE password_history (
    account_id    uuid NOT NULL REFERENCES accounts (id),
    password_hash text NOT NULL,             -- argon2id, PHC string, as accounts.password_hash was
    set_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, set_at)
);
REVOKE UPDATE, TRUNCATE ON password_history FROM chongjun_app;

-- Retention (集中管控; 网络安全法 第二十一条(三) before the 2025 amendment, 第二十三条 in the text in
-- force since 2026-01-01: network logs kept no less than six months). The archive is append-only;
-- the one way an entry ever leaves is `audit_prune`, run by the schema's owner (the service's role
-- may not call it), which refuses any cut-off younger than six months, prunes only a prefix already
-- covered by a signed checkpoint, and keeps each pruned entry's leaf hash in `audit_pruned`, so
-- the Merkle tree, every checkpoint and every later proof still verify. The delete trigger refuses
-- anything younger than six months even to the owner, whatever the function's arguments.
ALTER TABLE audit_head ADD COLUMN pruned_below bigint NOT NULL DEFAULT 0;

CREATE TABLE audit_pruned (
    seq       bigint PRIMARY KEY,
    at        timestamptz NOT NULL,
    leaf_hash bytea NOT NULL CHECK (length(leaf_hash) = 32),
    pruned_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER audit_pruned_append_only BEFORE UPDATE OR DELETE ON audit_pruned
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER audit_pruned_no_truncate BEFORE TRUNCATE ON audit_pruned
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_pruned FROM chongjun_app;

CREATE FUNCTION audit_log_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('chongjun.audit_prune', true) = 'on'
       AND OLD.at < now() - interval '6 months' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'table % is append-only: % refused (entries are kept at least six months, then leave only by audit_prune)',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_delete_guard();

CREATE FUNCTION audit_prune(before timestamptz) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head      record;
    signed    bigint;
    upto      bigint;
BEGIN
    IF before > now() - interval '6 months' THEN
        RAISE EXCEPTION 'audit entries are kept at least six months: % is younger than %', before, now() - interval '6 months'
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT next_seq, archive_from, pruned_below INTO head FROM audit_head WHERE one FOR UPDATE;
    SELECT coalesce(max(tree_size), 0) INTO signed FROM audit_checkpoints;
    -- The prefix [pruned_below, upto): older than `before`, signed, each with its recorded leaf hash.
    SELECT coalesce(min(seq), least(signed, head.next_seq)) INTO upto FROM audit_log
     WHERE seq >= head.pruned_below AND (at >= before OR leaf_hash IS NULL OR seq >= signed);
    upto := least(upto, signed);
    IF upto <= head.pruned_below THEN
        RETURN 0;
    END IF;
    INSERT INTO audit_pruned (seq, at, leaf_hash)
        SELECT seq, at, leaf_hash FROM audit_log WHERE seq >= head.pruned_below AND seq < upto;
    PERFORM set_config('chongjun.audit_prune', 'on', true);
    DELETE FROM audit_log WHERE seq >= head.pruned_below AND seq < upto;
    PERFORM set_config('chongjun.audit_prune', 'off', true);
    UPDATE audit_head SET pruned_below = upto WHERE one;
    RETURN upto - head.pruned_below;
END $$;
REVOKE EXECUTE ON FUNCTION audit_prune(timestamptz) FROM PUBLIC;
