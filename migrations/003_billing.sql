-- Billing state projected from provider events, and payment recovery. Every table is
-- tenant-scoped; personal data is minimised: an email is kept only as a SHA-256 hash for
-- lookups (the full event payload is sealed in webhook_events.payload_enc).

CREATE TABLE members (
    company_id   text NOT NULL REFERENCES companies (company_id),
    provider     text NOT NULL,
    external_id  text NOT NULL,              -- cus_..., user_..., Whop user id
    email_hash   text CHECK (email_hash ~ '^[0-9a-f]{64}$'),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, provider, external_id)
);
SELECT enable_tenancy('members');
CREATE INDEX members_email_hash ON members (company_id, email_hash) WHERE email_hash IS NOT NULL;

CREATE TABLE memberships (
    company_id          text NOT NULL REFERENCES companies (company_id),
    provider            text NOT NULL,
    external_id         text NOT NULL,       -- sub_..., mem_...
    member_external_id  text,
    plan                text,
    status              text NOT NULL,       -- the provider's word: active, past_due, canceled, ...
    current_period_end  timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, provider, external_id)
);
SELECT enable_tenancy('memberships');

CREATE TABLE payments (
    company_id              text NOT NULL REFERENCES companies (company_id),
    provider                text NOT NULL,
    external_id             text NOT NULL,   -- in_..., pay_...
    membership_external_id  text,
    member_external_id      text,
    status                  text NOT NULL CHECK (status IN ('paid', 'failed')),
    amount                  bigint NOT NULL CHECK (amount >= 0),   -- minor units
    currency                text NOT NULL,
    failure_reason          text,
    occurred_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, provider, external_id)
);
SELECT enable_tenancy('payments');
CREATE INDEX payments_membership ON payments (company_id, provider, membership_external_id, occurred_at);

-- A failed payment on an active membership opens a case; the next successful payment closes it
-- as recovered, deactivation or cancellation as lost. At most one open case per membership.
CREATE TABLE recovery_cases (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id              text NOT NULL REFERENCES companies (company_id),
    provider                text NOT NULL,
    membership_external_id  text NOT NULL,
    opened_by_payment       text NOT NULL,
    amount_at_risk          bigint NOT NULL CHECK (amount_at_risk >= 0),
    currency                text NOT NULL,
    status                  text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'recovered', 'lost')),
    opened_at               timestamptz NOT NULL,
    closed_at               timestamptz,
    closed_by_payment       text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (closed_at IS NULL))
);
SELECT enable_tenancy('recovery_cases');
CREATE UNIQUE INDEX recovery_cases_one_open
    ON recovery_cases (company_id, provider, membership_external_id) WHERE status = 'open';
-- Replays of the opening payment never open a second case, open or closed.
CREATE UNIQUE INDEX recovery_cases_opened_once ON recovery_cases (company_id, provider, opened_by_payment);

CREATE TABLE reminders (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    text NOT NULL REFERENCES companies (company_id),
    case_id       bigint NOT NULL REFERENCES recovery_cases (id),
    offset_hours  integer NOT NULL CHECK (offset_hours >= 0),
    due_at        timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'enqueued', 'sent', 'cancelled', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, offset_hours)
);
SELECT enable_tenancy('reminders');
CREATE INDEX reminders_due ON reminders (due_at) WHERE status = 'pending';
