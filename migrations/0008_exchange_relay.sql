-- The relay's state (issue 13): one lease (exactly one active relay across workers and hosts),
-- the cursor up to which events were put into batches, per-stream sequence numbers, and the
-- batches themselves with the exact bytes that were sealed and sent.
CREATE TABLE exchange_lease (
    name        text PRIMARY KEY,
    holder      text,
    epoch       bigint NOT NULL DEFAULT 0,            -- fencing token: +1 at every take-over
    expires_at  timestamptz NOT NULL DEFAULT '-infinity',
    cursor_tx   xid8 NOT NULL DEFAULT '0'::xid8,      -- the last event put into a batch
    cursor_pos  bigint NOT NULL DEFAULT 0,
    last_batch  bigint NOT NULL DEFAULT 0,
    last_digest bytea NOT NULL DEFAULT '\x'::bytea,   -- SHA-256 of the last batch's body
    -- running totals for /metrics, whichever process relays
    delivered   bigint NOT NULL DEFAULT 0,            -- events in batches the sink accepted
    retried     bigint NOT NULL DEFAULT 0,            -- failed attempts that will be retried
    dead        bigint NOT NULL DEFAULT 0             -- events in batches the sink refused
);
INSERT INTO exchange_lease (name) VALUES ('exchange');

CREATE TABLE exchange_streams (
    stream   text PRIMARY KEY,
    last_seq bigint NOT NULL
);

CREATE TABLE exchange_batches (
    seq          bigint PRIMARY KEY,                  -- 1, 2, 3 … in formation order
    batch_id     uuid NOT NULL UNIQUE,
    epoch        bigint NOT NULL,
    first_tx     xid8 NOT NULL,
    first_pos    bigint NOT NULL,
    last_tx      xid8 NOT NULL,
    last_pos     bigint NOT NULL,
    events       integer NOT NULL CHECK (events > 0),
    first_at     timestamptz NOT NULL,                -- when its oldest event happened (lag)
    body         bytea NOT NULL,                      -- the JSON that was sealed, byte for byte
    seal         text NOT NULL,                       -- detached JWS over body
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    resent       integer NOT NULL DEFAULT 0,
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    dead_at      timestamptz
);
CREATE INDEX exchange_batches_open ON exchange_batches (seq) WHERE status <> 'delivered';
