-- Staff accounts (identity's `accounts`, migration 0010) belong to a merchant that exists.
ALTER TABLE accounts
    ADD CONSTRAINT accounts_merchant_fk FOREIGN KEY (merchant_id) REFERENCES merchants (id);
CREATE INDEX accounts_merchant ON accounts (merchant_id) WHERE merchant_id IS NOT NULL;
