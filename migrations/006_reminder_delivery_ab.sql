-- Payment-recovery reminders: where they are delivered, the A/B-tested messages, what each
-- delivery attempt did, and the narrow function the scheduler claims due reminders through.

-- A company's delivery channel. Webhook secrets are sealed with the key ring, as source secrets
-- are (key id stored with the value).
CREATE TABLE reminder_endpoints (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id      text NOT NULL REFERENCES companies (company_id),
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    url             text CHECK (url IS NULL OR url ~ '^https?://'),
    email_from      text,
    secret_enc      bytea,
    secret_key_id   text,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((channel = 'webhook') = (url IS NOT NULL)),
    CHECK ((secret_enc IS NULL) = (secret_key_id IS NULL))
);
SELECT enable_tenancy('reminder_endpoints');
CREATE INDEX reminder_endpoints_company ON reminder_endpoints (company_id, channel) WHERE status = 'active';

-- The placeholders a reminder template may use. A variant naming anything else is refused when
-- it is saved, not when a reminder is sent.
CREATE FUNCTION reminder_template_is_valid(p_template text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT NOT EXISTS (
               SELECT 1
                 FROM pg_catalog.regexp_matches(p_template, '\{\{([^{}]*)\}\}', 'g') AS m(parts)
                WHERE pg_catalog.btrim(m.parts[1]) NOT IN ('member_name', 'amount', 'currency', 'plan',
                                                         'recovery_link', 'company_name', 'days_overdue'))
           -- Braces left over once every {{placeholder}} is removed are a typo, not text.
       AND pg_catalog.strpos(t.rest, '{{') = 0
       AND pg_catalog.strpos(t.rest, '}}') = 0
      FROM (SELECT pg_catalog.regexp_replace(p_template, '\{\{[^{}]*\}\}', '', 'g') AS rest) AS t
$$;
-- CHECK constraints run as whoever writes the row.
GRANT EXECUTE ON FUNCTION reminder_template_is_valid(text) TO inlet_app;

CREATE TABLE ab_test_variants (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id        text NOT NULL REFERENCES companies (company_id),
    channel           text NOT NULL CHECK (channel IN ('webhook', 'email')),
    name              text NOT NULL CHECK (name ~ '^[A-Za-z0-9 _.-]{1,64}$'),
    subject_template  text NOT NULL CHECK (reminder_template_is_valid(subject_template)),
    body_template     text NOT NULL CHECK (reminder_template_is_valid(body_template)),
    weight            numeric NOT NULL DEFAULT 1 CHECK (weight > 0),
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, channel, name)
);
SELECT enable_tenancy('ab_test_variants');

-- One row per reminder sent: which variant it carried.
CREATE TABLE ab_test_usage (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  text NOT NULL REFERENCES companies (company_id),
    variant_id  bigint NOT NULL REFERENCES ab_test_variants (id),
    reminder_id bigint NOT NULL UNIQUE REFERENCES reminders (id),
    case_id     bigint NOT NULL REFERENCES recovery_cases (id),
    sent_at     timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
SELECT enable_tenancy('ab_test_usage');
CREATE INDEX ab_test_usage_case ON ab_test_usage (case_id, sent_at DESC);
CREATE INDEX ab_test_usage_variant ON ab_test_usage (variant_id);

-- Clicks (one per reminder link) and conversions (one per case: the payment that recovered it,
-- attributed to the last variant sent before it).
CREATE TABLE ab_test_conversions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id  text NOT NULL REFERENCES companies (company_id),
    variant_id  bigint NOT NULL REFERENCES ab_test_variants (id),
    case_id     bigint NOT NULL REFERENCES recovery_cases (id),
    reminder_id bigint REFERENCES reminders (id),
    kind        text NOT NULL CHECK (kind IN ('click', 'conversion')),
    amount      bigint CHECK (amount IS NULL OR amount >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'click') = (reminder_id IS NOT NULL))
);
SELECT enable_tenancy('ab_test_conversions');
CREATE UNIQUE INDEX ab_test_conversions_one_click ON ab_test_conversions (reminder_id) WHERE kind = 'click';
CREATE UNIQUE INDEX ab_test_conversions_one_conversion ON ab_test_conversions (case_id) WHERE kind = 'conversion';
CREATE INDEX ab_test_conversions_variant ON ab_test_conversions (variant_id, kind);

-- The task log: every delivery attempt of every reminder.
CREATE TABLE delivery_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id    text NOT NULL REFERENCES companies (company_id),
    reminder_id   bigint NOT NULL REFERENCES reminders (id),
    endpoint_id   bigint REFERENCES reminder_endpoints (id),
    attempt       integer NOT NULL CHECK (attempt >= 1),
    status_code   integer,
    latency_ms    integer CHECK (latency_ms IS NULL OR latency_ms >= 0),
    error_class   text CHECK (error_class IS NULL OR error_class IN ('permanent', 'transient', 'circuit_open')),
    next_retry_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (reminder_id, attempt)
);
SELECT enable_tenancy('delivery_attempts');

-- Per variant: sends, clicks, CTR, conversions, conversion rate, revenue recovered. A security
-- invoker view: row-level security of the tables beneath applies to whoever reads it.
CREATE VIEW ab_test_performance WITH (security_invoker = true) AS
SELECT v.company_id,
       v.id AS variant_id,
       v.channel,
       v.name,
       COALESCE(u.sends, 0) AS sends,
       COALESCE(c.clicks, 0) AS clicks,
       CASE WHEN COALESCE(u.sends, 0) = 0 THEN 0
            ELSE round(COALESCE(c.clicks, 0)::numeric / u.sends, 4) END AS ctr,
       COALESCE(c.conversions, 0) AS conversions,
       CASE WHEN COALESCE(u.sends, 0) = 0 THEN 0
            ELSE round(COALESCE(c.conversions, 0)::numeric / u.sends, 4) END AS conversion_rate,
       COALESCE(c.revenue, 0) AS revenue_recovered
  FROM ab_test_variants v
  LEFT JOIN (SELECT variant_id, count(*) AS sends FROM ab_test_usage GROUP BY variant_id) u
         ON u.variant_id = v.id
  LEFT JOIN (SELECT variant_id,
                    count(*) FILTER (WHERE kind = 'click') AS clicks,
                    count(*) FILTER (WHERE kind = 'conversion') AS conversions,
                    COALESCE(sum(amount) FILTER (WHERE kind = 'conversion'), 0) AS revenue
               FROM ab_test_conversions GROUP BY variant_id) c
         ON c.variant_id = v.id;
GRANT SELECT ON ab_test_performance TO inlet_app;

-- The active variant with the best conversion rate among those sent at least p_min_sends times
-- (ties: more revenue, then the older variant); NULL while none has enough data. In the caller's
-- tenant context.
CREATE FUNCTION get_best_ab_variant(p_company_id text, p_min_sends integer DEFAULT 100)
    RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, public
AS $$
    SELECT p.variant_id
      FROM ab_test_performance p
      JOIN ab_test_variants v ON v.id = p.variant_id AND v.active
     WHERE p.company_id = p_company_id AND p.sends >= GREATEST(p_min_sends, 1)
     ORDER BY p.conversion_rate DESC, p.revenue_recovered DESC, p.variant_id
     LIMIT 1
$$;
GRANT EXECUTE ON FUNCTION get_best_ab_variant(text, integer) TO inlet_app;

-- Reminders are forced under row-level security for their owner too. This policy lets the owner
-- (the role running this migration, so only migrations and the SECURITY DEFINER function below)
-- see and update every tenant's reminders; inlet_app cannot become the owner.
CREATE POLICY owner_claims_across_tenants ON reminders FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- The scheduler's one way across tenants: claims up to p_limit (at most 500) pending reminders
-- due by p_now, oldest first, and marks them enqueued. SKIP LOCKED lets overlapping runs share
-- the work without taking a reminder twice. It returns ids only: no tenant data leaves here.
CREATE FUNCTION claim_due_reminders(p_now timestamptz, p_limit integer)
    RETURNS TABLE (reminder_id bigint, company_id text, case_id bigint, due_at timestamptz)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    UPDATE reminders r
       SET status = 'enqueued'
     WHERE r.id IN (SELECT d.id
                      FROM reminders d
                     WHERE d.status = 'pending' AND d.due_at <= p_now
                     ORDER BY d.due_at
                     LIMIT LEAST(GREATEST(p_limit, 0), 500)
                       FOR UPDATE SKIP LOCKED)
       AND r.status = 'pending'
    RETURNING r.id, r.company_id, r.case_id, r.due_at
$$;
REVOKE ALL ON FUNCTION claim_due_reminders(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_due_reminders(timestamptz, integer) TO inlet_app;
