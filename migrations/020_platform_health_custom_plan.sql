-- platform_health (019) as a SQL function is planned with its window as an unknown parameter:
-- the planner guesses a third of every company's rows and scans the table (40 ms at 100,000
-- rows, measured with bench-console). Planned with the window's value (EXECUTE ... USING), it
-- reads each company's (company_id, received_at) index for the window only (under 1 ms).
CREATE OR REPLACE FUNCTION platform_health(p_since timestamptz)
    RETURNS TABLE (events bigint, processed bigint, failed bigint, waiting bigint,
                   p95_processing_ms double precision, oldest_waiting_ms double precision)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
BEGIN
    RETURN QUERY EXECUTE
        'SELECT count(*),
                count(*) FILTER (WHERE e.processed_at IS NOT NULL),
                count(*) FILTER (WHERE e.status = ''failed''),
                count(*) FILTER (WHERE e.status = ''received''),
                percentile_cont(0.95) WITHIN GROUP (
                    ORDER BY extract(epoch FROM e.processed_at - e.received_at) * 1000)
                    FILTER (WHERE e.processed_at IS NOT NULL),
                (max(extract(epoch FROM now() - e.received_at) * 1000)
                    FILTER (WHERE e.status = ''received''))::float8
           FROM companies c
           CROSS JOIN LATERAL (
               SELECT w.processed_at, w.received_at, w.status
                 FROM webhook_events w
                WHERE w.company_id = c.company_id AND w.received_at >= $1) e'
        USING p_since;
END
$$;
