-- The benefits catalog: each benefit points at its current version; versions are immutable
-- (the ledger records benefit_id + version, so what applied can always be read back).

CREATE TABLE benefits (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Z][A-Z0-9_-]{0,31}$'),
    current_version integer NOT NULL CHECK (current_version >= 1),
    -- Copies of the current version's status and domain, for filtering without reading jsonb.
    status          text NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'retired')),
    domain          text NOT NULL CHECK (domain IN ('culture', 'tourism', 'transit', 'other')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX benefits_page ON benefits (created_at, id);
CREATE INDEX benefits_active ON benefits (code) WHERE status = 'active';

CREATE TABLE benefit_versions (
    benefit_id  uuid NOT NULL REFERENCES benefits (id),
    version     integer NOT NULL CHECK (version >= 1),
    status      text NOT NULL CHECK (status IN ('draft', 'active', 'paused', 'retired')),
    spec        jsonb NOT NULL,                  -- benefits.types.BenefitSpec, validated on write
    created_at  timestamptz NOT NULL DEFAULT now(),
    actor_kind  text NOT NULL,                   -- admin | system
    actor_id    text NOT NULL,
    note        text NOT NULL DEFAULT '',
    PRIMARY KEY (benefit_id, version)
);

-- A benefit's pointer must name one of its own versions; deferred, because the first version
-- and the benefit are written in one transaction.
ALTER TABLE benefits ADD CONSTRAINT benefits_current_version_fk
    FOREIGN KEY (id, current_version) REFERENCES benefit_versions (benefit_id, version)
    DEFERRABLE INITIALLY DEFERRED;

CREATE TRIGGER benefit_versions_append_only BEFORE UPDATE OR DELETE ON benefit_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER benefit_versions_no_truncate BEFORE TRUNCATE ON benefit_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_change();

-- Where a benefit can be used (venues belong to merchants, migration 0020).
CREATE TABLE venue_benefits (
    venue_id   uuid NOT NULL REFERENCES venues (id),
    benefit_id uuid NOT NULL REFERENCES benefits (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue_id, benefit_id)
);
CREATE INDEX venue_benefits_benefit ON venue_benefits (benefit_id);
