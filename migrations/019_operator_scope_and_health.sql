-- The console's operator views. An `operator` key (given only to the people who run Inlet,
-- implied by no other scope) sees every tenant's dead letters and the platform's health.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (
    cardinality(scopes) >= 1
    AND scopes <@ ARRAY['events:read', 'events:replay', 'payloads:read', 'privacy:export',
                        'privacy:delete', 'reports:read', 'admin', 'operator']::text[]);

-- The platform's processing figures since `p_since`, summed over every tenant: aggregates only,
-- never a row or an id of any tenant (the API answers them to operator keys only). Walks each
-- company's (company_id, received_at) index, so it reads the window's rows and no others and
-- needs no index of its own (every index is a write on each event).
CREATE FUNCTION platform_health(p_since timestamptz)
    RETURNS TABLE (events bigint, processed bigint, failed bigint, waiting bigint,
                   p95_processing_ms double precision, oldest_waiting_ms double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT count(*),
           count(*) FILTER (WHERE e.processed_at IS NOT NULL),
           count(*) FILTER (WHERE e.status = 'failed'),
           count(*) FILTER (WHERE e.status = 'received'),
           percentile_cont(0.95) WITHIN GROUP (
               ORDER BY extract(epoch FROM e.processed_at - e.received_at) * 1000)
               FILTER (WHERE e.processed_at IS NOT NULL),
           max(extract(epoch FROM now() - e.received_at) * 1000)
               FILTER (WHERE e.status = 'received')
      FROM companies c
      CROSS JOIN LATERAL (
          SELECT w.processed_at, w.received_at, w.status
            FROM webhook_events w
           WHERE w.company_id = c.company_id AND w.received_at >= p_since) e
$$;
REVOKE ALL ON FUNCTION platform_health(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION platform_health(timestamptz) TO inlet_app;
-- The definer is the owner, which already reads both tables across tenants (migrations 010, 011).
