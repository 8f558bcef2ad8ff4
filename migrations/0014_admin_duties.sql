-- 三员分立 (issue 17; GB/T 22239-2019 level 3): an admin account holds at most one of the three
-- duties, system (configures), security (accounts, roles, keys) or audit (reads and verifies the
-- archive). The primary key on account_id is what makes a second duty impossible, whatever the
-- application does; the trigger keeps duties on admin accounts only.
CREATE TABLE admin_duties (
    account_id  uuid PRIMARY KEY REFERENCES accounts (id),
    duty        text NOT NULL CHECK (duty IN ('system', 'security', 'audit')),
    assigned_by uuid,
    assigned_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION admin_duty_needs_an_admin() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id AND kind = 'admin') THEN
        RAISE EXCEPTION 'a duty belongs to an admin account' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER admin_duties_admin_only BEFORE INSERT OR UPDATE ON admin_duties
    FOR EACH ROW EXECUTE FUNCTION admin_duty_needs_an_admin();
