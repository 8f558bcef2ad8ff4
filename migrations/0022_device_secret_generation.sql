-- Rolling a device's secret refuses the tokens of the old secret by generation, not by time.
-- Before, a token carried whole-second `iat` and the device row the roll's instant: a token minted
-- with the old secret in the same second as the roll still passed, and an app host whose clock ran
-- behind the database refused fresh tokens for the difference. Now each device token carries the
-- generation of the secret it was issued under (`gen`), and only the current one passes.
--
-- Deploy note: tokens issued by older workers carry no `gen` and are refused once this release
-- runs; scanners fetch a new token on the 401, as they do when a token expires.
ALTER TABLE devices ADD COLUMN secret_generation integer NOT NULL DEFAULT 1 CHECK (secret_generation > 0);
-- Kept as a record of when the secret was last rolled; it no longer decides which tokens count.
ALTER TABLE devices RENAME COLUMN tokens_valid_after TO secret_rolled_at;
