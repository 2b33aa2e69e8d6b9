-- A member's display name, sealed like the email (for {{member_name}} in reminders).
ALTER TABLE members
    ADD COLUMN name_enc bytea,
    ADD COLUMN name_key_id text,
    ADD CONSTRAINT members_name_key_with_name CHECK ((name_enc IS NULL) = (name_key_id IS NULL));
