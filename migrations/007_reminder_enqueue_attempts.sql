-- The scheduler's enqueue attempts: each claim counts one, so every reminder job has a
-- deterministic key (reminder, attempt); a claim whose enqueue failed is released back to
-- pending in the same transaction.

ALTER TABLE reminders ADD COLUMN enqueue_attempts integer NOT NULL DEFAULT 0
    CHECK (enqueue_attempts >= 0);

DROP FUNCTION claim_due_reminders(timestamptz, integer);
CREATE FUNCTION claim_due_reminders(p_now timestamptz, p_limit integer)
    RETURNS TABLE (reminder_id bigint, company_id text, case_id bigint, due_at timestamptz,
                   attempt integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    UPDATE reminders r
       SET status = 'enqueued', enqueue_attempts = r.enqueue_attempts + 1
     WHERE r.id IN (SELECT d.id
                      FROM reminders d
                     WHERE d.status = 'pending' AND d.due_at <= p_now
                     ORDER BY d.due_at
                     LIMIT LEAST(GREATEST(p_limit, 0), 500)
                       FOR UPDATE SKIP LOCKED)
       AND r.status = 'pending'
    RETURNING r.id, r.company_id, r.case_id, r.due_at, r.enqueue_attempts
$$;
REVOKE ALL ON FUNCTION claim_due_reminders(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_due_reminders(timestamptz, integer) TO inlet_app;

-- Puts claimed reminders whose jobs did not reach the queue back to pending.
CREATE FUNCTION release_reminders(p_ids bigint[])
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH released AS (
        UPDATE reminders SET status = 'pending'
         WHERE id = ANY (p_ids) AND status = 'enqueued'
        RETURNING 1)
    SELECT count(*)::integer FROM released
$$;
REVOKE ALL ON FUNCTION release_reminders(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION release_reminders(bigint[]) TO inlet_app;
