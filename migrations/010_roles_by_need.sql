-- Database roles by need, and tenants the operator CLI can manage.
--
-- 1. The scheduler's role. `claim_due_reminders` and `release_reminders` cross tenants (they
--    run as the owner); only `inlet_scheduler`, the role schedule-reminders connects as, may
--    call them. `inlet_app` (consumers, HTTP functions, the tenant API) no longer can.
--    `inlet_scheduler` owns nothing, reads no table and has no other grant.
-- 2. `release_reminders` puts back only reminders claimed in the caller's own transaction
--    (the claim records its transaction id), so even the scheduler cannot flip arbitrary rows.
-- 3. The owner (who runs `inlet companies`) may read every company row, as it may every
--    reminder; row-level security still binds every other role. Settings are a JSON object.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inlet_scheduler') THEN
        BEGIN
            CREATE ROLE inlet_scheduler LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database on this server created it at the same moment
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname = 'inlet_scheduler' AND (rolsuper OR rolbypassrls OR rolcreaterole)) THEN
        RAISE EXCEPTION 'role inlet_scheduler may not be a superuser, bypass RLS or create roles';
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO inlet_scheduler;

ALTER TABLE reminders ADD COLUMN claimed_in_xact bigint;

CREATE OR REPLACE FUNCTION claim_due_reminders(p_now timestamptz, p_limit integer)
    RETURNS TABLE (reminder_id bigint, company_id text, case_id bigint, due_at timestamptz,
                   attempt integer)
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    UPDATE reminders r
       SET status = 'enqueued', enqueue_attempts = r.enqueue_attempts + 1,
           claimed_in_xact = pg_current_xact_id()::text::bigint
     WHERE r.id IN (SELECT d.id
                      FROM reminders d
                     WHERE d.status = 'pending' AND d.due_at <= p_now
                     ORDER BY d.due_at
                     LIMIT LEAST(GREATEST(p_limit, 0), 500)
                       FOR UPDATE SKIP LOCKED)
       AND r.status = 'pending'
    RETURNING r.id, r.company_id, r.case_id, r.due_at, r.enqueue_attempts
$$;

CREATE OR REPLACE FUNCTION release_reminders(p_ids bigint[])
    RETURNS integer
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    WITH released AS (
        UPDATE reminders SET status = 'pending'
         WHERE id = ANY (p_ids) AND status = 'enqueued'
           AND claimed_in_xact = pg_current_xact_id()::text::bigint
        RETURNING 1)
    SELECT count(*)::integer FROM released
$$;

REVOKE ALL ON FUNCTION claim_due_reminders(timestamptz, integer) FROM PUBLIC, inlet_app;
REVOKE ALL ON FUNCTION release_reminders(bigint[]) FROM PUBLIC, inlet_app;
GRANT EXECUTE ON FUNCTION claim_due_reminders(timestamptz, integer) TO inlet_scheduler;
GRANT EXECUTE ON FUNCTION release_reminders(bigint[]) TO inlet_scheduler;

CREATE POLICY owner_reads_across_tenants ON companies FOR SELECT TO CURRENT_USER USING (true);

ALTER TABLE companies ADD CONSTRAINT companies_settings_object
    CHECK (jsonb_typeof(settings) = 'object');
