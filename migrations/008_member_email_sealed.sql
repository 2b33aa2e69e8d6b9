-- A member's email address, sealed with the key ring (AES-256-GCM, key id beside it), so the
-- email reminder channel can reach the member. `email_hash` stays for lookups; deleting a
-- member forgets both.
ALTER TABLE members
    ADD COLUMN email_enc bytea,
    ADD COLUMN email_key_id text,
    ADD CONSTRAINT members_email_key_with_email CHECK ((email_enc IS NULL) = (email_key_id IS NULL));
