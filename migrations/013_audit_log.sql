-- A tamper-evident audit log and the record of migration verifications.
--
-- 1. `audit_log`: who did what to which tenant's data, when. Append-only for every role (a
--    trigger refuses UPDATE, DELETE and TRUNCATE, the owner's and a superuser's included);
--    `inlet_app` may only insert, in its own tenant's context. Each row carries the SHA-256 of
--    its predecessor in its chain (one chain per company, one for system-wide actions), so a
--    row changed or removed behind the trigger's back is found by `inlet audit verify`, which
--    recomputes every hash from the stored values (common/domain/src/audit.rs: the same
--    canonical form as audit_canonical below).
-- 2. `migration_verifications`: each `inlet migrate verify` run (commit, environment, result,
--    duration), append-only in the same way.

-- Append-only tables: one trigger function refuses changes to rows that exist.
CREATE FUNCTION refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
REVOKE ALL ON FUNCTION refuse_change() FROM PUBLIC;

-- 1. The audit log --------------------------------------------------------------------------------

CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL: a system-wide action (a retention run, a redrive across tenants). No foreign key:
    -- the rows outlive an offboarded company, whose offboarding they record.
    company_id text CHECK (company_id IS NULL OR company_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    seq        bigint NOT NULL,
    -- `key:<key id>`, `operator:<name>` or `function:<name>`.
    actor      text NOT NULL CHECK (actor ~ '^(key|operator|function):[A-Za-z0-9_.@-]{1,128}$'),
    action     text NOT NULL CHECK (action ~ '^[a-z][a-z_.]{0,63}$'),
    target     text NOT NULL DEFAULT '' CHECK (length(target) <= 256),
    at         timestamptz NOT NULL DEFAULT now(),
    request_id text CHECK (request_id IS NULL OR length(request_id) <= 128),
    -- Ids, counts and codes only: never personal data, secrets or payloads.
    details    jsonb NOT NULL DEFAULT '{}'::jsonb
               CHECK (jsonb_typeof(details) = 'object' AND octet_length(details::text) <= 4096),
    prev_hash  bytea NOT NULL CHECK (length(prev_hash) = 32),
    hash       bytea NOT NULL CHECK (length(hash) = 32)
);
CREATE UNIQUE INDEX audit_log_chain_seq ON audit_log ((coalesce(company_id, '')), seq);
CREATE INDEX audit_log_company_at ON audit_log (company_id, at DESC);

SELECT enable_tenancy('audit_log');
-- Rows never change, so there is nothing to touch.
DROP TRIGGER touch_updated_at ON audit_log;
-- The owner (the operator CLI, and through them the definer functions) appends system rows and
-- reads every chain to verify it.
CREATE POLICY owner_appends ON audit_log FOR INSERT TO CURRENT_USER WITH CHECK (true);
CREATE POLICY owner_reads ON audit_log FOR SELECT TO CURRENT_USER USING (true);

REVOKE ALL ON audit_log FROM inlet_app;
GRANT INSERT ON audit_log TO inlet_app;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The newest link of each chain ('' is the system chain). Only the chain trigger touches it.
CREATE TABLE audit_heads (
    chain text PRIMARY KEY,
    seq   bigint NOT NULL CHECK (seq >= 0),
    hash  bytea NOT NULL CHECK (length(hash) = 32)
);
REVOKE ALL ON audit_heads FROM inlet_app;

-- What a row's hash covers, each field length-prefixed so no two rows share a form:
-- `<chars>:<text>;` per field, `~;` for NULL; the time as microseconds since the epoch.
CREATE FUNCTION audit_canonical(
    p_seq bigint, p_company_id text, p_actor text, p_action text, p_target text,
    p_at timestamptz, p_request_id text, p_details jsonb)
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog
AS $$
    SELECT string_agg(CASE WHEN f IS NULL THEN '~;' ELSE length(f) || ':' || f || ';' END, ''
                      ORDER BY n)
      FROM unnest(ARRAY[p_seq::text, p_company_id, p_actor, p_action, p_target,
                        ((extract(epoch FROM p_at) * 1000000)::bigint)::text, p_request_id,
                        p_details::text]) WITH ORDINALITY AS t(f, n)
$$;
REVOKE ALL ON FUNCTION audit_canonical(bigint, text, text, text, text, timestamptz, text, jsonb)
    FROM PUBLIC;

-- Links each new row to its chain: sequence number, time, previous hash and hash are set here,
-- never by the writer. The head row's lock serialises writers of one chain until they commit.
CREATE FUNCTION audit_chain() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
DECLARE
    v_chain text := coalesce(NEW.company_id, '');
    v_seq   bigint;
    v_prev  bytea;
BEGIN
    INSERT INTO audit_heads (chain, seq, hash) VALUES (v_chain, 0, decode(repeat('00', 32), 'hex'))
        ON CONFLICT (chain) DO NOTHING;
    SELECT seq, hash INTO v_seq, v_prev FROM audit_heads WHERE chain = v_chain FOR UPDATE;
    NEW.seq := v_seq + 1;
    NEW.at := now();
    NEW.prev_hash := v_prev;
    NEW.hash := sha256(v_prev || convert_to(audit_canonical(NEW.seq, NEW.company_id, NEW.actor,
        NEW.action, NEW.target, NEW.at, NEW.request_id, NEW.details), 'UTF8'));
    UPDATE audit_heads SET seq = NEW.seq, hash = NEW.hash WHERE chain = v_chain;
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION audit_chain() FROM PUBLIC;
CREATE TRIGGER chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_chain();

-- The maintenance crons (inlet_ops reads and writes no tenant table) record their runs here.
CREATE FUNCTION record_audit(
    p_company_id text, p_actor text, p_action text, p_target text, p_request_id text,
    p_details jsonb)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    INSERT INTO audit_log (company_id, actor, action, target, request_id, details)
    VALUES (p_company_id, p_actor, p_action, coalesce(p_target, ''), p_request_id,
            coalesce(p_details, '{}'::jsonb))
$$;
REVOKE ALL ON FUNCTION record_audit(text, text, text, text, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION record_audit(text, text, text, text, text, jsonb) TO inlet_ops;

-- 2. Migration verifications ----------------------------------------------------------------------

CREATE TABLE migration_verifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    verified_at timestamptz NOT NULL DEFAULT now(),
    commit_sha  text NOT NULL CHECK (commit_sha ~ '^([0-9a-f]{7,64}|unknown)$'),
    environment text NOT NULL CHECK (environment ~ '^[a-z0-9_-]{1,32}$'),
    result      text NOT NULL CHECK (result IN ('match', 'mismatch')),
    duration_ms integer NOT NULL CHECK (duration_ms >= 0),
    -- Migration file names and what differs: no data.
    findings    text[] NOT NULL DEFAULT '{}'
);
REVOKE ALL ON migration_verifications FROM inlet_app;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON migration_verifications
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON migration_verifications
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
