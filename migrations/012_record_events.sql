-- A whole SQS batch's ledger rows in one call: process-events records every envelope of a
-- batch in one transaction and one round trip, then applies the projections. Each element goes
-- through record_event (its own tenant's context, the per-object order, the unique ledger row),
-- in array order, so the batch behaves exactly as the same envelopes one after the other.
-- Returns record_event's answer for each element, in order. The context is left at the last
-- element's tenant; the caller enters each tenant again before its projection.
CREATE FUNCTION record_events(
    p_company_ids text[], p_source_ids text[], p_providers text[], p_event_ids text[],
    p_event_types text[], p_object_types text[], p_object_ids text[],
    p_occurred_ats timestamptz[], p_received_ats timestamptz[], p_fresh_statuses text[],
    p_payload_mins jsonb[], p_payload_encs bytea[], p_payload_key_ids text[])
    RETURNS text[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
AS $$
DECLARE
    v_count int := coalesce(array_length(p_event_ids, 1), 0);
    v_statuses text[] := ARRAY[]::text[];
BEGIN
    IF v_count > 100 THEN
        RAISE EXCEPTION 'record_events takes at most 100 events, got %', v_count;
    END IF;
    FOR i IN 1 .. v_count LOOP
        v_statuses := v_statuses || record_event(
            p_company_ids[i], p_source_ids[i], p_providers[i], p_event_ids[i], p_event_types[i],
            p_object_types[i], p_object_ids[i], p_occurred_ats[i], p_received_ats[i],
            p_fresh_statuses[i], p_payload_mins[i], p_payload_encs[i], p_payload_key_ids[i]);
    END LOOP;
    RETURN v_statuses;
END $$;
REVOKE ALL ON FUNCTION record_events(text[], text[], text[], text[], text[], text[], text[],
    timestamptz[], timestamptz[], text[], jsonb[], bytea[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_events(text[], text[], text[], text[], text[], text[], text[],
    timestamptz[], timestamptz[], text[], jsonb[], bytea[], text[]) TO inlet_app;
