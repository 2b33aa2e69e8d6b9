-- Operations: replays counted on the ledger, per-source activity for the no-data check, retention,
-- and the maintenance crons' role with its narrow doors across tenants.
--
-- 1. `inlet_ops`, the role dlq-digest, watchdog and retention connect as: owns nothing, reads no
--    tenant table; it reaches across tenants only through the SECURITY DEFINER functions below
--    and keeps its own small state in `ops_state`.
-- 2. Replays: `replay_event` re-applies an event to its existing ledger row (counted), honouring
--    the per-object order; `record_event` stays the path for new events.
-- 3. `source_activity`: per source, when it last received an event and its usual gap, kept by
--    the consumer once per batch; the watchdog finds sources gone silent (one alert each).
-- 4. Retention: ledger rows and delivery attempts older than the company's retention
--    (`settings.retention_days`, default 90, at least 7) are deleted, sealed payloads older than
--    `settings.payload_retention_days` (default 30) dropped, in bounded batches.
-- 5. Reminders whose jobs died in the DLQ are settled `failed` with the dead letter's code.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inlet_ops') THEN
        BEGIN
            CREATE ROLE inlet_ops LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database on this server created it at the same moment
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname = 'inlet_ops' AND (rolsuper OR rolbypassrls OR rolcreaterole)) THEN
        RAISE EXCEPTION 'role inlet_ops may not be a superuser, bypass RLS or create roles';
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO inlet_ops;

-- The maintenance crons' own state (last digest, alerts raised): no tenant data.
CREATE TABLE ops_state (
    key        text PRIMARY KEY CHECK (key ~ '^[a-z0-9_.:#-]{1,200}$'),
    value      jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON ops_state FROM inlet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ops_state TO inlet_ops;

-- The owner (migrations, the operator CLI, and so the SECURITY DEFINER functions) maintains every
-- tenant's ledger and logs; row-level security still binds every other role.
CREATE POLICY owner_maintains_across_tenants ON webhook_events FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);
CREATE POLICY owner_maintains_across_tenants ON delivery_attempts FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- 2. Replays -------------------------------------------------------------------------------------

ALTER TABLE webhook_events
    ADD COLUMN replay_count integer NOT NULL DEFAULT 0 CHECK (replay_count >= 0),
    ADD COLUMN last_replayed_at timestamptz;

-- Returns 'unknown_tenant', 'missing' (no ledger row: process it as a new event),
-- 'skipped_stale' (older than its object's newest applied event: nothing re-applied), or the
-- status to apply with ('completed' when a projection exists, else 'ignored'). The row's status
-- becomes 'completed' when re-applied; its replay count grows either way.
CREATE FUNCTION replay_event(
    p_company_id text, p_source_id text, p_provider text, p_event_id text,
    p_object_type text, p_object_id text, p_occurred_at timestamptz, p_fresh_status text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
AS $$
BEGIN
    IF NOT enter_company(p_company_id) THEN
        RETURN 'unknown_tenant';
    END IF;
    UPDATE webhook_events SET replay_count = replay_count + 1, last_replayed_at = now()
     WHERE source_id = p_source_id AND provider_event_id = p_event_id;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    IF p_object_type IS NOT NULL AND p_object_id IS NOT NULL AND p_occurred_at IS NOT NULL THEN
        INSERT INTO object_versions (company_id, provider, object_type, object_id, last_event_at, last_event_id)
        VALUES (p_company_id, p_provider, p_object_type, p_object_id, p_occurred_at, p_event_id)
        ON CONFLICT (company_id, provider, object_type, object_id) DO UPDATE
            SET last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id
          WHERE object_versions.last_event_at <= EXCLUDED.last_event_at;
        IF NOT FOUND THEN
            RETURN 'skipped_stale';
        END IF;
    END IF;
    IF p_fresh_status = 'completed' THEN
        UPDATE webhook_events SET status = 'completed', processed_at = now()
         WHERE source_id = p_source_id AND provider_event_id = p_event_id AND status <> 'completed';
    END IF;
    RETURN p_fresh_status;
END $$;
GRANT EXECUTE ON FUNCTION replay_event(text, text, text, text, text, text, timestamptz, text)
    TO inlet_app;

-- 3. Source activity -----------------------------------------------------------------------------

-- Keyed by (company, source): a source whose tenant comes from the payload serves many.
CREATE TABLE source_activity (
    company_id        text NOT NULL REFERENCES companies (company_id),
    source_id         text NOT NULL,
    provider          text NOT NULL,
    events            bigint NOT NULL DEFAULT 0 CHECK (events >= 0),
    first_received_at timestamptz NOT NULL,
    last_received_at  timestamptz NOT NULL,
    -- Exponentially weighted mean of the gap between events, in seconds.
    usual_gap_secs    double precision,
    -- The largest time an event of the source waited in the queue, in the last batch.
    last_queue_age_ms bigint,
    silent_alerted_at timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, source_id)
);
SELECT enable_tenancy('source_activity');
CREATE INDEX source_activity_updated ON source_activity (updated_at DESC);

-- A batch's events of one source (their received_at): counted, the usual gap updated, a
-- silence alert cleared. Runs as the caller (the consumer) in the source's tenant context.
CREATE FUNCTION note_source_activity(
    p_company_id text, p_source_id text, p_provider text, p_received_at timestamptz[],
    p_queue_age_ms bigint)
    RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
AS $$
DECLARE
    v_events integer := coalesce(array_length(p_received_at, 1), 0);
    v_last timestamptz := (SELECT max(t) FROM unnest(p_received_at) AS t);
BEGIN
    IF v_events = 0 THEN
        RETURN;
    END IF;
    PERFORM set_company_context(p_company_id);
    INSERT INTO source_activity (company_id, source_id, provider, events, first_received_at,
        last_received_at, last_queue_age_ms)
    VALUES (p_company_id, p_source_id, p_provider, v_events, v_last, v_last, p_queue_age_ms)
    ON CONFLICT (company_id, source_id) DO UPDATE SET
        events = source_activity.events + EXCLUDED.events,
        usual_gap_secs = CASE
            WHEN EXCLUDED.last_received_at <= source_activity.last_received_at THEN source_activity.usual_gap_secs
            ELSE coalesce(0.8 * source_activity.usual_gap_secs, 0)
                 + (CASE WHEN source_activity.usual_gap_secs IS NULL THEN 1.0 ELSE 0.2 END)
                   * extract(epoch FROM EXCLUDED.last_received_at - source_activity.last_received_at)
                   / EXCLUDED.events
            END,
        last_received_at = greatest(source_activity.last_received_at, EXCLUDED.last_received_at),
        last_queue_age_ms = EXCLUDED.last_queue_age_ms,
        silent_alerted_at = NULL;
END $$;
GRANT EXECUTE ON FUNCTION note_source_activity(text, text, text, timestamptz[], bigint)
    TO inlet_app;

CREATE POLICY owner_maintains_across_tenants ON source_activity FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- Sources that normally receive events (at least p_min_events, a usual gap known) and have
-- received none for p_intervals of their usual gaps (and at least p_min_silence): returned and
-- marked, so each silence is reported once; new events clear the mark.
CREATE FUNCTION mark_silent_sources(
    p_now timestamptz, p_min_events integer, p_intervals double precision, p_min_silence interval)
    RETURNS TABLE (source_id text, company_id text, provider text, last_received_at timestamptz,
                   usual_gap_secs double precision)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    UPDATE source_activity a SET silent_alerted_at = p_now
     WHERE a.silent_alerted_at IS NULL
       AND a.events >= p_min_events
       AND a.usual_gap_secs IS NOT NULL
       AND p_now - a.last_received_at
           > greatest(p_min_silence, make_interval(secs => a.usual_gap_secs * p_intervals))
    RETURNING a.source_id, a.company_id, a.provider, a.last_received_at, a.usual_gap_secs
$$;

-- The newest queue age consumers reported (ms) and when: the watchdog's view of the events
-- queue's oldest message.
CREATE FUNCTION latest_queue_age()
    RETURNS TABLE (queue_age_ms bigint, reported_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT a.last_queue_age_ms, a.updated_at FROM source_activity a
     ORDER BY a.updated_at DESC LIMIT 1
$$;

-- Reminders `enqueued` for longer than p_stuck_for go back to `pending` (the scheduler gives them
-- a new job; the old job, if it ever runs, is superseded).
CREATE FUNCTION requeue_stuck_reminders(p_stuck_for interval, p_limit integer)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH stuck AS (
        UPDATE reminders SET status = 'pending'
         WHERE id IN (SELECT r.id FROM reminders r
                       WHERE r.status = 'enqueued' AND r.updated_at < now() - p_stuck_for
                       ORDER BY r.updated_at LIMIT least(greatest(p_limit, 0), 1000)
                         FOR UPDATE SKIP LOCKED)
        RETURNING 1)
    SELECT count(*)::integer FROM stuck
$$;

-- 4. Retention -----------------------------------------------------------------------------------

-- A company's retention in days, from its settings (validated when saved; read defensively).
CREATE FUNCTION retention_days(p_settings jsonb, p_key text, p_default integer, p_minimum integer)
    RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT greatest(p_minimum, least(3650,
        CASE WHEN p_settings ->> p_key ~ '^[0-9]{1,4}$' THEN (p_settings ->> p_key)::integer
             ELSE p_default END))
$$;
GRANT EXECUTE ON FUNCTION retention_days(jsonb, text, integer, integer) TO inlet_app, inlet_ops;

ALTER TABLE companies ADD COLUMN payloads_dropped_before timestamptz;
CREATE INDEX delivery_attempts_company_created ON delivery_attempts (company_id, created_at);

-- Deletes up to p_limit ledger rows older than their company's retention; returns how many.
CREATE FUNCTION retention_delete_events(p_limit integer)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH cutoffs AS (
        SELECT c.company_id,
               now() - make_interval(days => retention_days(c.settings, 'retention_days', 90, 7)) AS cutoff
          FROM companies c),
    doomed AS (
        SELECT w.id FROM cutoffs c
          JOIN LATERAL (SELECT e.id FROM webhook_events e
                         WHERE e.company_id = c.company_id AND e.received_at < c.cutoff
                         LIMIT least(greatest(p_limit, 0), 10000)) w ON true
         LIMIT least(greatest(p_limit, 0), 10000)),
    deleted AS (DELETE FROM webhook_events WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::integer FROM deleted
$$;

-- Deletes up to p_limit delivery attempts older than their company's retention.
CREATE FUNCTION retention_delete_attempts(p_limit integer)
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH cutoffs AS (
        SELECT c.company_id,
               now() - make_interval(days => retention_days(c.settings, 'retention_days', 90, 7)) AS cutoff
          FROM companies c),
    doomed AS (
        SELECT a.id FROM cutoffs c
          JOIN LATERAL (SELECT d.id FROM delivery_attempts d
                         WHERE d.company_id = c.company_id AND d.created_at < c.cutoff
                         LIMIT least(greatest(p_limit, 0), 10000)) a ON true
         LIMIT least(greatest(p_limit, 0), 10000)),
    deleted AS (DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::integer FROM deleted
$$;

-- Drops up to p_limit sealed payloads older than their company's payload retention, keeping
-- the ledger rows. Each company remembers how far it has dropped, so a run never rescans rows
-- it already cleared.
CREATE FUNCTION retention_drop_payloads(p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
DECLARE
    v_company record;
    v_cutoff timestamptz;
    v_dropped integer;
    v_total integer := 0;
    v_limit integer := least(greatest(p_limit, 0), 10000);
BEGIN
    FOR v_company IN SELECT c.company_id, c.settings, c.payloads_dropped_before FROM companies c LOOP
        EXIT WHEN v_total >= v_limit;
        v_cutoff := now() - make_interval(days => least(
            retention_days(v_company.settings, 'payload_retention_days', 30, 1),
            retention_days(v_company.settings, 'retention_days', 90, 7)));
        CONTINUE WHEN v_company.payloads_dropped_before >= v_cutoff;
        WITH doomed AS (
            SELECT e.id FROM webhook_events e
             WHERE e.company_id = v_company.company_id
               AND e.received_at < v_cutoff
               AND e.received_at >= coalesce(v_company.payloads_dropped_before, '-infinity')
               AND e.payload_enc IS NOT NULL
             LIMIT v_limit - v_total)
        UPDATE webhook_events SET payload_enc = NULL, payload_key_id = NULL
         WHERE id IN (SELECT id FROM doomed);
        GET DIAGNOSTICS v_dropped = ROW_COUNT;
        v_total := v_total + v_dropped;
        IF v_total < v_limit THEN
            -- This company is done up to its cutoff.
            UPDATE companies SET payloads_dropped_before = v_cutoff
             WHERE company_id = v_company.company_id;
        END IF;
    END LOOP;
    RETURN v_total;
END $$;

-- The owner may update companies (payloads_dropped_before) through this function only.
CREATE POLICY owner_maintains_across_tenants_update ON companies FOR UPDATE TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- 5. Reminders whose jobs died ------------------------------------------------------------------

ALTER TABLE reminders ADD COLUMN failure_code text
    CHECK (failure_code IS NULL OR failure_code ~ '^[a-z_]{1,64}$');

-- Settles reminders still `enqueued` whose jobs are in the reminders DLQ: `failed` with the dead
-- letter's code. Returns how many changed.
CREATE FUNCTION fail_dead_reminders(p_ids bigint[], p_codes text[])
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH dead AS (SELECT * FROM unnest(p_ids, p_codes) AS d(id, code)),
    failed AS (
        UPDATE reminders r SET status = 'failed', failure_code = d.code
          FROM dead d
         WHERE r.id = d.id AND r.status = 'enqueued' AND d.code ~ '^[a-z_]{1,64}$'
        RETURNING 1)
    SELECT count(*)::integer FROM failed
$$;

REVOKE ALL ON FUNCTION mark_silent_sources(timestamptz, integer, double precision, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION latest_queue_age() FROM PUBLIC;
REVOKE ALL ON FUNCTION requeue_stuck_reminders(interval, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention_delete_events(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention_delete_attempts(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION retention_drop_payloads(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION fail_dead_reminders(bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mark_silent_sources(timestamptz, integer, double precision, interval) TO inlet_ops;
GRANT EXECUTE ON FUNCTION latest_queue_age() TO inlet_ops;
GRANT EXECUTE ON FUNCTION requeue_stuck_reminders(interval, integer) TO inlet_ops;
GRANT EXECUTE ON FUNCTION retention_delete_events(integer) TO inlet_ops;
GRANT EXECUTE ON FUNCTION retention_delete_attempts(integer) TO inlet_ops;
GRANT EXECUTE ON FUNCTION retention_drop_payloads(integer) TO inlet_ops;
GRANT EXECUTE ON FUNCTION fail_dead_reminders(bigint[], text[]) TO inlet_ops;
