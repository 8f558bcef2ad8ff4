-- The login throttle's counters while Redis does not answer (identity/throttle.py).
-- One row per counter (a hashed username or client address): the attempts counted in its
-- window and when that window ends. One upsert per attempt reserves it before the password is
-- checked, so concurrent attempts on several workers cannot all pass a read-then-write check.
CREATE TABLE login_attempts (
    counter     text PRIMARY KEY,
    attempts    integer NOT NULL CHECK (attempts >= 0),
    window_ends timestamptz NOT NULL
);
CREATE INDEX login_attempts_window_ends ON login_attempts (window_ends);
