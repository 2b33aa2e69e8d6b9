-- Entering a tenant's context and checking the tenant exists, in one call (one round trip per
-- event instead of two). Same transaction-local context as set_company_context.
CREATE FUNCTION enter_company(p_company_id text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
AS $$
BEGIN
    PERFORM set_company_context(p_company_id);
    -- Row-level security now shows this company's row, and only it.
    RETURN EXISTS (SELECT 1 FROM companies WHERE company_id = p_company_id);
END $$;
GRANT EXECUTE ON FUNCTION enter_company(text) TO inlet_app;
