-- Signed checkpoints of the audit archive (RFC 9162 tree head, C2SP tlog-checkpoint note text).
-- Append-only like the log: a checkpoint is never changed or withdrawn.
CREATE TABLE audit_checkpoints (
    tree_size  bigint PRIMARY KEY CHECK (tree_size >= 0),
    root_hash  bytea NOT NULL CHECK (length(root_hash) = 32),
    at         timestamptz NOT NULL,
    note       text NOT NULL,          -- the signed text: origin, size, base64 root, time line
    kid        text NOT NULL,          -- the key ring's key (published in /.well-known/jwks.json)
    alg        text NOT NULL,
    signature  bytea NOT NULL
);
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();
