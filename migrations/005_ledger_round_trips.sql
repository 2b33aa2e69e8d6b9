-- Fewer round trips and steadier plans for the event ledger.
--
-- 1. record_event: entering the tenant, the per-object version check and the ledger insert in
--    one call (they were three round trips per event). It runs as the caller (inlet_app), so
--    row-level security applies to everything it touches.
-- 2. Pending reminders by case, and cases by membership, through indexes that match those
--    queries exactly.
--    Without it, a cached generic plan could pick reminders_due (every pending reminder of
--    every tenant) whenever the statistics were young or stale.
-- 3. Two webhook_events indexes no query uses: each cost every insert. Add an index back with
--    the query that needs it.
-- 4. get_current_company_id() inlinable. A SQL function with a SET clause is never inlined: every
--    call in every policy check and VALUES list parsed and planned its body again, and pushed a
--    GUC level. Without the clause the planner folds it into the query. It stays safe without a
--    pinned search_path because every name in it is qualified with pg_catalog (NULLIF is syntax).

ALTER FUNCTION get_current_company_id() RESET ALL;
CREATE OR REPLACE FUNCTION get_current_company_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT NULLIF(pg_catalog.current_setting('app.current_company_id', true), '') $$;

CREATE INDEX reminders_pending_by_case ON reminders (case_id) WHERE status = 'pending';
-- Closing finds the open case by membership; with young statistics the planner otherwise took
-- recovery_cases_opened_once and filtered every case of the provider.
CREATE INDEX recovery_cases_by_membership
    ON recovery_cases (company_id, provider, membership_external_id);

DROP INDEX webhook_events_company_object;
DROP INDEX webhook_events_company_type;

-- Returns what happened: the status recorded for a new event ('completed', 'ignored' or
-- 'skipped_stale'), 'duplicate' when this tenant already has the event, 'other_tenant' when the
-- (source, event id) belongs to another tenant, 'unknown_tenant' when the company does not exist
-- (nothing is written then).
CREATE FUNCTION record_event(
    p_company_id text, p_source_id text, p_provider text, p_event_id text, p_event_type text,
    p_object_type text, p_object_id text, p_occurred_at timestamptz, p_received_at timestamptz,
    p_fresh_status text, p_payload_min jsonb, p_payload_enc bytea, p_payload_key_id text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
AS $$
DECLARE
    v_status text := p_fresh_status;
BEGIN
    IF NOT enter_company(p_company_id) THEN
        RETURN 'unknown_tenant';
    END IF;
    -- Moves the object's version forward, or finds the event stale. The row lock taken on
    -- conflict orders concurrent events for the same object.
    IF p_object_type IS NOT NULL AND p_object_id IS NOT NULL AND p_occurred_at IS NOT NULL THEN
        INSERT INTO object_versions (company_id, provider, object_type, object_id, last_event_at, last_event_id)
        VALUES (p_company_id, p_provider, p_object_type, p_object_id, p_occurred_at, p_event_id)
        ON CONFLICT (company_id, provider, object_type, object_id) DO UPDATE
            SET last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id
          WHERE object_versions.last_event_at <= EXCLUDED.last_event_at;
        IF NOT FOUND THEN
            v_status := 'skipped_stale';
        END IF;
    END IF;
    INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, event_type,
        object_type, object_id, occurred_at, received_at, status, processed_at, attempts,
        payload_min, payload_enc, payload_key_id)
    VALUES (p_company_id, p_source_id, p_provider, p_event_id, p_event_type, p_object_type,
        p_object_id, p_occurred_at, p_received_at, v_status, now(), 1, p_payload_min,
        p_payload_enc, p_payload_key_id)
    ON CONFLICT (source_id, provider_event_id) DO NOTHING;
    IF FOUND THEN
        RETURN v_status;
    END IF;
    -- Already recorded: under this tenant, or, if the row is not visible here, another
    -- tenant's. An event id cannot belong to two tenants.
    IF EXISTS (SELECT 1 FROM webhook_events
                WHERE source_id = p_source_id AND provider_event_id = p_event_id) THEN
        RETURN 'duplicate';
    END IF;
    RETURN 'other_tenant';
END $$;
GRANT EXECUTE ON FUNCTION record_event(text, text, text, text, text, text, text, timestamptz,
    timestamptz, text, jsonb, bytea, text) TO inlet_app;
