-- The transactional outbox (issue 13): one row per event the data center needs, written in the
-- same transaction (usually the same statement) as the change it records.
--
-- Order: `position` is taken at insert time, which is NOT commit order: a transaction that took
-- position 10 can commit after one that took 11. The relay therefore reads in (tx, position)
-- order and only rows whose transaction is below the xmin of its own snapshot, i.e. finished:
-- nothing can ever appear behind its cursor (see exchange/relay.py and docs/exchange.md).
-- A person appears only as `subject` (our internal id); the relay turns it into a keyed
-- pseudonym on the way out, so no ID number or name is ever in an event.
CREATE TABLE outbox (
    position  bigserial NOT NULL,
    tx        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id        uuid NOT NULL DEFAULT gen_random_uuid(),  -- the event's id, the receiver's dedupe key
    stream    text NOT NULL CHECK (stream ~ '^[a-z][a-z_]{0,31}$'),
    type      text NOT NULL CHECK (type ~ '^[a-z][a-z_.]{0,63}$'),
    version   smallint NOT NULL CHECK (version >= 1),
    at        timestamptz NOT NULL DEFAULT now(),
    subject   uuid,                                     -- a person, pseudonymised by the relay
    payload   jsonb NOT NULL,
    -- The relay's read order is the key, and the only index: one btree insert per event.
    PRIMARY KEY (tx, position)
);
