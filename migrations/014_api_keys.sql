-- Tenant API keys. The key itself (`ink_<key id>_<secret>`) is shown once when created and never
-- stored: a row holds the key id and the SHA-256 of the secret (common/core/src/api_key.rs says
-- why not scrypt). A key belongs to one company; its scopes say what it may do.

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    company_id    text NOT NULL REFERENCES companies (company_id),
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 100 AND name !~ '[[:cntrl:]]'),
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    scopes        text[] NOT NULL CHECK (
                      cardinality(scopes) >= 1
                      AND scopes <@ ARRAY['events:read', 'events:replay', 'payloads:read',
                                          'privacy:export', 'privacy:delete', 'reports:read',
                                          'admin']::text[]),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX api_keys_company ON api_keys (company_id, created_at DESC);
SELECT enable_tenancy('api_keys');

-- Authentication happens before the tenant is known: the key id finds the company, then every
-- query runs in that company's context. This door returns only what checking the secret needs,
-- and only for the id asked.
CREATE FUNCTION api_key_lookup(p_key_id text)
    RETURNS TABLE (company_id text, secret_sha256 bytea, scopes text[], expired boolean,
                   revoked boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public
AS $$
    SELECT k.company_id, k.secret_sha256, k.scopes,
           k.expires_at IS NOT NULL AND k.expires_at <= now(), k.revoked_at IS NOT NULL
      FROM api_keys k
     WHERE k.key_id = p_key_id
$$;
REVOKE ALL ON FUNCTION api_key_lookup(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_lookup(text) TO inlet_app;
-- The definer runs as the owner, whom FORCE ROW LEVEL SECURITY also binds: it reads keys of
-- every tenant (and nothing else of them).
CREATE POLICY owner_authenticates ON api_keys FOR SELECT TO CURRENT_USER USING (true);
