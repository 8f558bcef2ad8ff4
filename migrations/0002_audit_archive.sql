-- The audit log becomes a tamper-evident archive (issue 12): every entry gets a gapless sequence
-- number `seq` (its leaf index in the RFC 9162 Merkle tree), the actor's role and district, the
-- request id, and the leaf hash computed by the writer when it was recorded.
--
-- `seq` is assigned under the one row of `audit_head`, locked by the inserting transaction until
-- it commits, so `seq` is gapless (a rollback gives its number back) and in commit order: a reader
-- that has seen seq N has seen every entry below N. `id` stays as it was (bigserial, with gaps).
CREATE TABLE audit_head (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    next_seq bigint NOT NULL,
    archive_from bigint NOT NULL      -- entries below it predate the archive: no recorded leaf hash
);
INSERT INTO audit_head (one, next_seq, archive_from)
    SELECT true, count(*), count(*) FROM audit_log;

ALTER TABLE audit_log
    ADD COLUMN seq            bigint,
    ADD COLUMN actor_role     text,
    ADD COLUMN actor_district text,
    ADD COLUMN request_id     text,
    ADD COLUMN leaf_hash      bytea CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32);

-- Entries written before this migration take their place in id order (no recorded leaf hash: the
-- first signed checkpoint fixes their content).
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log a SET seq = n.rn - 1
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM audit_log) n
 WHERE a.id = n.id;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
ALTER TABLE audit_log ALTER COLUMN seq SET NOT NULL;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_seq_key UNIQUE (seq);

-- Every insert takes the next number: the writer (foundation.audit) passes the number it read
-- under the lock (with the leaf hash it computed over it); any other insert gets one assigned
-- here and no leaf hash, which `chongjun audit verify` reports as written outside the writer.
-- Both functions run as the owner (SECURITY DEFINER): the service's role may read the head but not
-- move it, so it can neither skip numbers nor reuse one.
CREATE FUNCTION audit_next() RETURNS TABLE (seq bigint, at timestamptz)
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT next_seq, clock_timestamp() FROM audit_head WHERE one FOR UPDATE
$$;

CREATE FUNCTION audit_log_sequence() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    next bigint;
BEGIN
    SELECT next_seq INTO next FROM audit_head WHERE one FOR UPDATE;
    IF NEW.seq IS NULL THEN
        NEW.seq := next;
        NEW.leaf_hash := NULL;
        NEW.at := clock_timestamp();
    ELSIF NEW.seq <> next THEN
        RAISE EXCEPTION 'audit_log: seq % is not the next one (%)', NEW.seq, next
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE audit_head SET next_seq = next + 1 WHERE one;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_sequence BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_sequence();

CREATE INDEX audit_log_district_seq ON audit_log (district, seq);
CREATE INDEX audit_log_action_seq ON audit_log (action, seq);

-- The head is history too: nobody moves it but the trigger above.
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
