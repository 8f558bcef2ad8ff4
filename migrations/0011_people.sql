-- The people registry: 优抚对象 from the bureau's roster. No ID number or full name in clear:
-- `id_hmac` is the keyed blind index used for lookup (pepper outside the database), the
-- `*_sealed` columns are AES-256-GCM blobs bound to (table, column, row id) and carrying their
-- key version, and the masked forms are what screens show.
CREATE TABLE people (
    id                uuid PRIMARY KEY,
    id_hmac           bytea NOT NULL UNIQUE CHECK (length(id_hmac) = 32),
    id_sealed         bytea NOT NULL,
    name_sealed       bytea NOT NULL,
    -- The key version both blobs were sealed under (also in each blob's first two bytes), so a
    -- re-seal job finds the rows still on an old key with an index scan.
    seal_version      smallint NOT NULL CHECK (seal_version > 0),
    id_masked         text NOT NULL CHECK (id_masked ~ '^[0-9]{3}[*]{11}[0-9]{3}[0-9X]$'),
    name_masked       text NOT NULL CHECK (length(name_masked) BETWEEN 1 AND 50),
    categories        text[] NOT NULL CHECK (cardinality(categories) >= 1),
    disability_grade  smallint CHECK (disability_grade BETWEEN 1 AND 10),
    disability_cause  text CHECK (disability_cause IN ('WAR', 'DUTY', 'ILLNESS')),
    card_kind         text NOT NULL CHECK (card_kind IN ('VETERAN_CARD', 'SURVIVOR_CARD', 'NONE')),
    card_status       text NOT NULL CHECK (card_status IN ('ACTIVE', 'SUSPENDED', 'REVOKED', 'REPLACED')),
    card_province     text NOT NULL CHECK (card_province ~ '^[1-9][0-9]0000$'),
    district          text CHECK (district ~ '^[1-9][0-9]{5}$'),
    birth_date        date,
    source            text NOT NULL DEFAULT 'roster' CHECK (source IN ('roster', 'admin')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((disability_grade IS NULL) = (disability_cause IS NULL))
);
CREATE INDEX people_page ON people (created_at, id);
CREATE INDEX people_district ON people (district);
CREATE INDEX people_seal_version ON people (seal_version);

-- Family ties that make someone one of the 三属 (the member died as a martyr, on duty or of
-- illness) or a 军属 (the member serves): who the member is to this person and what became of them.
CREATE TABLE person_relations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id          uuid NOT NULL REFERENCES people (id),
    relation           text NOT NULL
                       CHECK (relation IN ('SPOUSE', 'PARENT', 'CHILD', 'SIBLING_DEPENDENT', 'PARENT_IN_LAW')),
    member_status      text NOT NULL CHECK (member_status IN ('MARTYR', 'DUTY_DEATH', 'ILLNESS_DEATH', 'ACTIVE')),
    -- The serving or deceased member when they are in the roster themselves.
    member_person_id   uuid REFERENCES people (id),
    member_name_masked text CHECK (length(member_name_masked) BETWEEN 1 AND 50),
    since              date,
    evidence_ref       text CHECK (length(evidence_ref) BETWEEN 1 AND 200),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (member_person_id IS NULL OR member_person_id <> person_id),
    UNIQUE (person_id, relation, member_status, member_person_id)
);
CREATE INDEX person_relations_person ON person_relations (person_id);
