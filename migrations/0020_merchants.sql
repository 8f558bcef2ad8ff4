-- Partners (merchants), their venues and the scanner devices bound to one venue each.

CREATE TABLE merchants (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- 统一社会信用代码 (GB 32100-2015); the checksum is verified by merchants.service.
    credit_code    text NOT NULL UNIQUE CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$'),
    -- The district whose bureau onboarded the merchant and manages it (GB/T 2260).
    district       text NOT NULL CHECK (district ~ '^31[0-9]{4}$'),
    contact_name   text NOT NULL CHECK (length(contact_name) BETWEEN 1 AND 100),
    contact_phone  text NOT NULL CHECK (length(contact_phone) BETWEEN 5 AND 30),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_page ON merchants (created_at, id);
CREATE INDEX merchants_district ON merchants (district);

CREATE TABLE venues (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    merchant_id     uuid NOT NULL REFERENCES merchants (id),
    name_zh         text NOT NULL CHECK (length(name_zh) BETWEEN 1 AND 200),
    name_en         text CHECK (length(name_en) BETWEEN 1 AND 200),
    district        text NOT NULL CHECK (district ~ '^31[0-9]{4}$'),
    address         text NOT NULL CHECK (length(address) BETWEEN 1 AND 300),
    -- GCJ-02, the datum of the maps a mini-program shows.
    latitude        double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude       double precision CHECK (longitude BETWEEN -180 AND 180),
    domain          text NOT NULL CHECK (domain IN ('culture', 'tourism', 'transit', 'other')),
    -- [{"days": [1..7], "opens": "HH:MM", "closes": "HH:MM"}], local time Asia/Shanghai.
    opening_hours   jsonb NOT NULL DEFAULT '[]'::jsonb,
    daily_capacity  integer CHECK (daily_capacity > 0),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL)),
    -- Lets devices reference (venue, merchant) so a device's merchant can never disagree.
    UNIQUE (id, merchant_id)
);
CREATE INDEX venues_page ON venues (created_at, id);
CREATE INDEX venues_merchant ON venues (merchant_id);
CREATE INDEX venues_district ON venues (district);

CREATE TABLE devices (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id           uuid NOT NULL,
    merchant_id        uuid NOT NULL,
    label              text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    -- HMAC-SHA256 of the 256-bit secret under a server key; the secret itself is never stored.
    secret_hash        bytea NOT NULL,
    -- Device tokens issued before this instant are refused (set again when the secret is rolled).
    tokens_valid_after timestamptz NOT NULL DEFAULT now(),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_by_kind    text NOT NULL,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    revoked_at         timestamptz,
    last_token_at      timestamptz,
    FOREIGN KEY (venue_id, merchant_id) REFERENCES venues (id, merchant_id),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX devices_page ON devices (created_at, id);
CREATE INDEX devices_venue ON devices (venue_id);
CREATE INDEX devices_merchant ON devices (merchant_id);
