-- Tenancy primitives every later migration uses.
--
-- The application role (`inlet_app`) is what every function connects as: it logs in, owns no
-- table, is not a superuser and cannot bypass row-level security. Migrations run as the
-- owner, which owns every table; FORCE ROW LEVEL SECURITY makes policies apply to it too.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inlet_app') THEN
        BEGIN
            CREATE ROLE inlet_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database on this server created it at the same moment
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname = 'inlet_app' AND (rolsuper OR rolbypassrls OR rolcreaterole)) THEN
        RAISE EXCEPTION 'role inlet_app may not be a superuser, bypass RLS or create roles; '
            'fix it with ALTER ROLE inlet_app NOSUPERUSER NOBYPASSRLS NOCREATEROLE';
    END IF;
END $$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO inlet_app;

-- Tables created by the owner from now on: data access for the app, nothing more.
ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO inlet_app;
ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO inlet_app;
-- Functions are not callable by everyone by default; each grant is explicit.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- The tenant of the current transaction, or NULL: absent or empty means no tenant, and every
-- policy compares with `=`, so no tenant sees no rows, never all rows.
CREATE FUNCTION get_current_company_id() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog
AS $$ SELECT NULLIF(current_setting('app.current_company_id', true), '') $$;

-- Sets the tenant for the rest of the current transaction only (SET LOCAL semantics).
CREATE FUNCTION set_company_context(p_company_id text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog
AS $$
BEGIN
    IF p_company_id IS NULL OR btrim(p_company_id) = '' THEN
        RAISE EXCEPTION 'set_company_context: company id must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('app.current_company_id', p_company_id, true);
END $$;

CREATE FUNCTION touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

GRANT EXECUTE ON FUNCTION get_current_company_id() TO inlet_app;
GRANT EXECUTE ON FUNCTION set_company_context(text) TO inlet_app;
GRANT EXECUTE ON FUNCTION touch_updated_at() TO inlet_app;

-- One call per tenant table: RLS enabled and forced, one policy per verb, updated_at trigger.
-- Only migrations (the owner) call it.
CREATE FUNCTION enable_tenancy(p_table regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, public
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    EXECUTE format('CREATE POLICY tenant_select ON %s FOR SELECT '
                   'USING (company_id = get_current_company_id())', p_table);
    EXECUTE format('CREATE POLICY tenant_insert ON %s FOR INSERT '
                   'WITH CHECK (company_id = get_current_company_id())', p_table);
    EXECUTE format('CREATE POLICY tenant_update ON %s FOR UPDATE '
                   'USING (company_id = get_current_company_id()) '
                   'WITH CHECK (company_id = get_current_company_id())', p_table);
    EXECUTE format('CREATE POLICY tenant_delete ON %s FOR DELETE '
                   'USING (company_id = get_current_company_id())', p_table);
    EXECUTE format('CREATE TRIGGER touch_updated_at BEFORE UPDATE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION touch_updated_at()', p_table);
END $$;
