-- Export jobs whose retries ran out are in the exports DLQ; the DLQ digest settles their requests
-- `failed` with the dead letter's code (and clears the sealed member id), as it settles reminders
-- whose jobs died. Without it such a request stayed `pending` for ever.

-- The owner (and so the definer below) settles requests of every tenant.
CREATE POLICY owner_settles_across_tenants ON privacy_requests FOR ALL TO CURRENT_USER
    USING (true) WITH CHECK (true);

CREATE FUNCTION fail_dead_exports(p_companies text[], p_ids bigint[], p_codes text[])
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH dead AS (SELECT * FROM unnest(p_companies, p_ids, p_codes) AS d(company_id, id, code)),
    failed AS (
        UPDATE privacy_requests p
           SET status = 'failed', counts = jsonb_build_object('reason', d.code),
               subject_enc = NULL, subject_key_id = NULL, completed_at = now()
          FROM dead d
         WHERE p.id = d.id AND p.company_id = d.company_id AND p.kind = 'export'
           AND p.status = 'pending' AND d.code ~ '^[a-z_]{1,64}$'
        RETURNING 1)
    SELECT count(*)::integer FROM failed
$$;
REVOKE ALL ON FUNCTION fail_dead_exports(text[], bigint[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fail_dead_exports(text[], bigint[], text[]) TO inlet_ops;
