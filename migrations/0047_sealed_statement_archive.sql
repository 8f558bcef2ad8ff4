-- 电子印章 that outlives its key (benefits/redemption/seal.py, reports.py).
--
-- seal_keys: the public half of every seal key version that ever sealed something, so the
-- published JWKS keeps a key after its private half is rotated out (or its secret file is gone):
-- a statement sealed before a rotation still verifies after it. Append-only.
CREATE TABLE seal_keys (
    kid         text PRIMARY KEY,
    alg         text NOT NULL,
    version     integer NOT NULL CHECK (version >= 0),
    public_jwk  jsonb NOT NULL,
    first_used  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER seal_keys_append_only BEFORE UPDATE OR DELETE ON seal_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER seal_keys_no_truncate BEFORE TRUNCATE ON seal_keys
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- sealed_statements: every sealed statement as it was issued, byte for byte. A request for a
-- statement whose content (everything but issued_at) was sealed before gets the archived copy,
-- never a new seal; a changed content (a new redemption, the month becoming final) is a new
-- revision. `digest` (SHA-256 of `document`, the JSON bytes served) is also in audit_log.
CREATE TABLE sealed_statements (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    statement_id    text NOT NULL,
    content_digest  text NOT NULL,
    revision        integer NOT NULL CHECK (revision >= 1),
    merchant_id     uuid NOT NULL,
    month           text NOT NULL,
    kid             text NOT NULL REFERENCES seal_keys (kid),
    document        bytea NOT NULL,
    digest          text NOT NULL,
    issued_at       timestamptz NOT NULL,
    UNIQUE (statement_id, content_digest),
    UNIQUE (statement_id, revision)
);
CREATE TRIGGER sealed_statements_append_only BEFORE UPDATE OR DELETE ON sealed_statements
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER sealed_statements_no_truncate BEFORE TRUNCATE ON sealed_statements
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
