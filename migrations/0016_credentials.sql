-- The electronic 优待证 (identity/credentials/): one row per SD-JWT VC we issued. The credential
-- itself is not stored (the holder keeps it); what we keep is where its status lives in our Token
-- Status List and what it was bound to. A (list, idx) pair is never reused (TSL20 §13.4): the
-- UNIQUE constraint and the append-only trigger (rows are never deleted) make sure of it.
-- The status an entry shows is derived at publication time from the card (people.card_status)
-- and from `revoked_at`, so a roster import that suspends a card suspends every credential of
-- that person in the next status list served, with no second write to forget.
CREATE TABLE credentials (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id          uuid NOT NULL REFERENCES people (id),
    status_list        integer NOT NULL CHECK (status_list > 0),
    status_idx         integer NOT NULL CHECK (status_idx >= 0),
    vct                text NOT NULL,
    kid                text NOT NULL,
    holder_thumbprint  text NOT NULL,
    issued_at          timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    UNIQUE (status_list, status_idx)
);
CREATE INDEX credentials_person ON credentials (person_id);
CREATE INDEX credentials_list ON credentials (status_list, status_idx) INCLUDE (person_id, revoked_at);

CREATE FUNCTION refuse_credential_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credentials rows are never deleted (a status list index is never reused)';
END $$;
CREATE TRIGGER credentials_no_delete BEFORE DELETE OR TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_credential_delete();
