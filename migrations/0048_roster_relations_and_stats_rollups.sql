-- Family ties from the roster (issue 12): the roster's `relations` column names each serviceman
-- by ID number, stored as its blind index (the same keyed HMAC as people.id_hmac, never the
-- number), so a tie holds whether or not the serviceman is enrolled, and finds them when they are.
-- `source` tells the roster's ties (replaced by each re-import of the person) from an admin's.
ALTER TABLE person_relations
    ADD COLUMN member_id_hmac bytea CHECK (length(member_id_hmac) = 32),
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('roster', 'admin')),
    ADD CHECK (source <> 'roster' OR member_id_hmac IS NOT NULL);
CREATE UNIQUE INDEX person_relations_roster_tie ON person_relations (person_id, relation, member_id_hmac)
    WHERE source = 'roster';
CREATE INDEX person_relations_member_index ON person_relations (member_id_hmac) WHERE member_id_hmac IS NOT NULL;
