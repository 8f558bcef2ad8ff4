-- Identity, auth half: our signing keys, staff/admin accounts and refresh tokens.
-- (The people registry is in 0011; later auth changes use 0012+.)

-- Every worker loads the same key ring from here. Private keys are AES-GCM sealed under a KEK
-- from the secret store, so a database dump alone cannot sign anything.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY CHECK (kid ~ '^[A-Za-z0-9_-]{16,64}$'),
    alg          text NOT NULL CHECK (alg IN ('EdDSA', 'ES256')),
    state        text NOT NULL CHECK (state IN ('next', 'active', 'retired', 'removed')),
    public_jwk   jsonb NOT NULL,
    private_enc  bytea NOT NULL,             -- nonce || AES-GCM(ciphertext + tag), AAD = kid
    kek_version  integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz,
    removed_at   timestamptz
);
-- At most one key signs and at most one waits to sign.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Staff (merchant back office) and admins (city | district | auditor) log in with a password.
-- The merchants package adds the FK accounts.merchant_id -> merchants in its own range.
CREATE TABLE accounts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('staff', 'admin')),
    username        text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{1,63}$'),
    password_hash   text NOT NULL,           -- argon2id, PHC string
    role            text,
    district        text,
    merchant_id     uuid,
    totp_secret_enc bytea,                   -- nonce || AES-GCM(secret), AAD = account id
    totp_key_version integer,
    totp_last_step  bigint,                  -- a TOTP step is accepted once (RFC 6238 §5.2)
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz,
    CONSTRAINT accounts_username_unique UNIQUE (username),
    CONSTRAINT accounts_admin_role CHECK (
        kind <> 'admin' OR role IN ('city', 'district', 'auditor')
    ),
    CONSTRAINT accounts_district_admin CHECK (
        kind <> 'admin' OR ((role = 'district') = (district IS NOT NULL))
    ),
    CONSTRAINT accounts_staff_merchant CHECK (kind <> 'staff' OR merchant_id IS NOT NULL),
    CONSTRAINT accounts_admin_no_merchant CHECK (kind <> 'admin' OR merchant_id IS NULL),
    CONSTRAINT accounts_totp_pair CHECK ((totp_secret_enc IS NULL) = (totp_key_version IS NULL))
);

-- Opaque refresh tokens, stored as SHA-256 only. Each use rotates the token inside its family;
-- presenting an already rotated token revokes the whole family (RFC 9700 §4.14.2).
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id   uuid NOT NULL,
    subject     uuid NOT NULL,              -- person, account or device id: revoke all of one subject
    principal   jsonb NOT NULL,             -- identity.Principal as issued
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
