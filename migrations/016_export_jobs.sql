-- Exports as jobs: the tenant API records a pending export and queues it; the export function
-- writes the file to the exports bucket and completes the request with the object's key. The
-- member id the job needs travels sealed in the row (never in the queue message) and is cleared
-- when the job ends.

ALTER TABLE privacy_requests DROP CONSTRAINT privacy_requests_status_check;
ALTER TABLE privacy_requests
    ADD CONSTRAINT privacy_requests_status_check
        CHECK (status IN ('pending', 'completed', 'not_found', 'failed')),
    ADD COLUMN subject_enc    bytea,
    ADD COLUMN subject_key_id text,
    ADD COLUMN object_key     text CHECK (object_key IS NULL OR object_key ~ '^exports/[A-Za-z0-9_.:-]+/[0-9]+\.ndjson$'),
    ADD COLUMN completed_at   timestamptz,
    ADD CONSTRAINT privacy_requests_subject_sealed_while_pending
        CHECK ((subject_enc IS NULL) = (subject_key_id IS NULL)
               AND (subject_enc IS NULL OR status = 'pending'));
