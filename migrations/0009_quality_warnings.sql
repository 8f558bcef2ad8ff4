-- Data-quality warnings (issue 13 §4, seed 第二十条): one row per condition and district; the
-- monitor raises it while the condition holds and sets cleared_at when it stops holding.
CREATE TABLE quality_warnings (
    code        text NOT NULL,
    district    text NOT NULL DEFAULT '',             -- '' = city-wide
    severity    text NOT NULL CHECK (severity IN ('warning', 'critical')),
    count       integer NOT NULL CHECK (count > 0),
    sample_ids  text[] NOT NULL DEFAULT '{}',          -- masked: never an ID number in clear
    message_zh  text NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz,
    PRIMARY KEY (code, district)
);
