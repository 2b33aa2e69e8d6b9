//! Security validation queries: what the catalog says about tenancy, as a list of findings.
//! `inlet db audit` prints them; the tenancy tests assert there are none.

use tokio_postgres::Client;

/// The role consumers, HTTP functions and the tenant API connect as.
pub const APP_ROLE: &str = "inlet_app";
/// The role schedule-reminders connects as: the only one that may claim across tenants.
pub const SCHEDULER_ROLE: &str = "inlet_scheduler";
/// The role the maintenance crons (dlq-digest, watchdog, retention) connect as.
pub const OPS_ROLE: &str = "inlet_ops";
/// The roles functions connect as: none may be powerful.
pub const FUNCTION_ROLES: [&str; 3] = [APP_ROLE, SCHEDULER_ROLE, OPS_ROLE];

/// Tables in `public` that have a `company_id` column: the tenant tables.
pub async fn tenant_tables(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                AND a.attname = 'company_id' AND NOT a.attisdropped
              ORDER BY c.relname",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every way the schema falls short of the tenancy contract in DESIGN.md; empty when it holds.
pub async fn tenancy_findings(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let mut findings = Vec::new();

    let rows = client
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                    ARRAY(SELECT p.polcmd::text FROM pg_policy p WHERE p.polrelid = c.oid)
               FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                AND a.attname = 'company_id' AND NOT a.attisdropped
              ORDER BY c.relname",
            &[],
        )
        .await?;
    for row in rows {
        let table: String = row.get(0);
        if !row.get::<_, bool>(1) {
            findings.push(format!("table {table} has company_id but row-level security is not enabled; add `SELECT enable_tenancy('{table}')` to its migration"));
        }
        if !row.get::<_, bool>(2) {
            findings.push(format!("table {table} does not FORCE row-level security"));
        }
        let commands: Vec<String> = row.get(3);
        for (cmd, verb) in [
            ("r", "SELECT"),
            ("a", "INSERT"),
            ("w", "UPDATE"),
            ("d", "DELETE"),
        ] {
            if !commands.iter().any(|c| c == cmd || c == "*") {
                findings.push(format!("table {table} has no {verb} policy"));
            }
        }
    }

    let rows = client
        .query(
            "SELECT p.proname,
                    coalesce(array_to_string(p.proconfig, ','), '') LIKE '%search_path=%',
                    has_function_privilege('public', p.oid, 'EXECUTE')
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.prosecdef
              ORDER BY p.proname",
            &[],
        )
        .await?;
    for row in rows {
        let name: String = row.get(0);
        if !row.get::<_, bool>(1) {
            findings.push(format!(
                "SECURITY DEFINER function {name} has no fixed search_path"
            ));
        }
        if row.get::<_, bool>(2) {
            findings.push(format!(
                "SECURITY DEFINER function {name} is executable by PUBLIC; grant it only to the role that calls it"
            ));
        }
    }

    for role_name in FUNCTION_ROLES {
        let role = client
            .query_opt(
                "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
                        (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
                   FROM pg_roles r WHERE rolname = $1",
                &[&role_name],
            )
            .await?;
        match role {
            None => findings.push(format!(
                "role {role_name} does not exist; run `inlet migrate`"
            )),
            Some(row) => {
                for (index, what) in [
                    (0, "is a superuser"),
                    (1, "can bypass row-level security"),
                    (2, "can create roles"),
                    (3, "can create databases"),
                ] {
                    if row.get::<_, bool>(index) {
                        findings.push(format!("role {role_name} {what}"));
                    }
                }
                if row.get::<_, i64>(4) > 0 {
                    findings.push(format!(
                        "role {role_name} owns relations; the migrator must own them"
                    ));
                }
            }
        }
    }
    Ok(findings)
}
