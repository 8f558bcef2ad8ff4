-- The 国密 crypto profile (issue 17): signing keys may be SM2 (with SM3, JWS alg "SM2").
-- The algorithm stays pinned per kid; keys of every algorithm coexist in one ring.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_alg_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_alg_check CHECK (alg IN ('EdDSA', 'ES256', 'SM2'));
