-- 长三角 trust list (identity/issuers/): identity issuers beyond Shanghai's 随申码, each with its
-- own provider: `jwks` (codes are compact JWS verified with the issuer's published keys, held
-- here) or `online` (codes are sent to the issuer's 验码 URL). City admins add, suspend and
-- retire them; retired is final. Every change takes the next value of `trust_list_version`, so
-- the signed trust list's version only ever grows and a verifier can refuse a rolled-back list.
CREATE SEQUENCE trust_list_version;

CREATE TABLE trusted_issuers (
    code         text PRIMARY KEY CHECK (code ~ '^[A-Z]{2}-[A-Z0-9]{2,16}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    province     text NOT NULL CHECK (province ~ '^[1-9][0-9]0000$'),
    kind         text NOT NULL CHECK (kind IN ('jwks', 'online')),
    code_prefix  text NOT NULL UNIQUE CHECK (code_prefix ~ '^[A-Z]{2,6}[0-9]?:$'),
    jwks         jsonb,
    verify_url   text,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'retired')),
    revision     bigint NOT NULL DEFAULT nextval('trust_list_version'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'jwks') = (jwks IS NOT NULL)),
    CHECK ((kind = 'online') = (verify_url IS NOT NULL))
);
