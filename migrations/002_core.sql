-- The core schema: companies (tenants), the webhook ledger, and per-object versions for
-- stale-event detection. Every table here is tenant-scoped.

CREATE TABLE companies (
    company_id text PRIMARY KEY CHECK (company_id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    name       text NOT NULL,
    settings   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT enable_tenancy('companies');

-- One row per provider event that reached a consumer: the ledger behind "exactly once in effect".
CREATE TABLE webhook_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id        text NOT NULL REFERENCES companies (company_id),
    source_id         text NOT NULL,
    provider          text NOT NULL,
    provider_event_id text NOT NULL,
    event_type        text NOT NULL,
    object_type       text,
    object_id         text,
    occurred_at       timestamptz,
    received_at       timestamptz NOT NULL,
    processed_at      timestamptz,
    status            text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'completed', 'skipped_stale', 'ignored', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error        text,
    -- Allow-listed fields only; the full payload is stored encrypted (AES-256-GCM) with its key id.
    payload_min       jsonb,
    payload_enc       bytea,
    payload_key_id    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_events_source_event_key UNIQUE (source_id, provider_event_id),
    CONSTRAINT webhook_events_payload_key_with_payload
        CHECK ((payload_enc IS NULL) = (payload_key_id IS NULL))
);
SELECT enable_tenancy('webhook_events');
CREATE INDEX webhook_events_company_received ON webhook_events (company_id, received_at DESC);
CREATE INDEX webhook_events_company_status ON webhook_events (company_id, status, received_at);
CREATE INDEX webhook_events_company_object
    ON webhook_events (company_id, provider, object_type, object_id, occurred_at)
    WHERE object_id IS NOT NULL;
CREATE INDEX webhook_events_company_type ON webhook_events (company_id, event_type, received_at DESC);

-- The newest event applied per object: an event older than this is stale and changes nothing.
CREATE TABLE object_versions (
    company_id     text NOT NULL REFERENCES companies (company_id),
    provider       text NOT NULL,
    object_type    text NOT NULL,
    object_id      text NOT NULL,
    last_event_at  timestamptz NOT NULL,
    last_event_id  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, provider, object_type, object_id)
);
SELECT enable_tenancy('object_versions');
