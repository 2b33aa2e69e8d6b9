-- Privacy requests: each export and erasure of a member, with its outcome. The member is named
-- by the SHA-256 of (company, member id) only, so the record of an erasure does not itself keep
-- the id it erased; counts say what was done.

CREATE TABLE privacy_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id   text NOT NULL REFERENCES companies (company_id),
    kind         text NOT NULL CHECK (kind IN ('export', 'erasure')),
    subject_hash text NOT NULL CHECK (subject_hash ~ '^[0-9a-f]{64}$'),
    -- `key:<id>`, `operator:<name>` or `function:<name>`, as in the audit log.
    requested_by text NOT NULL,
    status       text NOT NULL CHECK (status IN ('completed', 'not_found', 'failed')),
    -- What was exported or erased, by kind: counts only.
    counts       jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(counts) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT enable_tenancy('privacy_requests');
CREATE INDEX privacy_requests_subject ON privacy_requests (company_id, subject_hash, created_at DESC);
