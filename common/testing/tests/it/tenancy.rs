//! The tenancy matrix: every table with a `company_id` column, found in the catalog, is proven
//! isolated per verb, as the application role, for another tenant and for no tenant at all.

use inlet_postgres::audit;
use inlet_testing::TestDb;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const A: &str = "co_tenant_a";
const B: &str = "co_tenant_b";

/// How to insert one valid row of each tenant table: `$1` company id, `$2` a unique key.
/// A new tenant table must add its line here; the matrix refuses to skip it.
pub(crate) fn fixture(table: &str) -> Option<&'static str> {
    Some(match table {
        "companies" => "INSERT INTO companies (company_id, name) VALUES ($1, $2)",
        "webhook_events" => {
            "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, \
             event_type, received_at) VALUES ($1, 'src_' || $1, 'stripe', $2, 'test.event', now())"
        }
        "object_versions" => {
            "INSERT INTO object_versions (company_id, provider, object_type, object_id, \
             last_event_at, last_event_id) VALUES ($1, 'stripe', 'customer', $2, now(), $2)"
        }
        "members" => {
            "INSERT INTO members (company_id, provider, external_id) VALUES ($1, 'stripe', $2)"
        }
        "memberships" => {
            "INSERT INTO memberships (company_id, provider, external_id, status) \
             VALUES ($1, 'stripe', $2, 'active')"
        }
        "payments" => {
            "INSERT INTO payments (company_id, provider, external_id, status, amount, currency) \
             VALUES ($1, 'stripe', $2, 'failed', 100, 'usd')"
        }
        "recovery_cases" => {
            "INSERT INTO recovery_cases (company_id, provider, membership_external_id, \
             opened_by_payment, amount_at_risk, currency, opened_at) \
             VALUES ($1, 'stripe', $2, $2, 100, 'usd', now())"
        }
        "reminders" => {
            "INSERT INTO reminders (company_id, case_id, offset_hours, due_at) \
             SELECT $1, (SELECT id FROM recovery_cases WHERE company_id = $1 LIMIT 1), \
                    length($2), now()"
        }
        "reminder_endpoints" => {
            "INSERT INTO reminder_endpoints (company_id, channel, url) \
             VALUES ($1, 'webhook', 'https://example.com/' || $2)"
        }
        "ab_test_variants" => {
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template) \
             VALUES ($1, 'webhook', $2, 'Payment failed', 'Pay {{amount}} at {{recovery_link}}')"
        }
        // Dependent rows are created with the row itself, so the fixture stands alone.
        "ab_test_usage" => {
            "WITH v AS (INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template) \
                        VALUES ($1, 'email', 'u' || length($2) || md5($2), 's', 'b') RETURNING id), \
                  c AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, \
                        opened_by_payment, amount_at_risk, currency, opened_at) \
                        VALUES ($1, 'stripe', 'u_' || $2, 'u_' || $2, 100, 'usd', now()) RETURNING id), \
                  r AS (INSERT INTO reminders (company_id, case_id, offset_hours, due_at) \
                        SELECT $1, c.id, 0, now() FROM c RETURNING id, case_id) \
             INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id) \
             SELECT $1, v.id, r.id, r.case_id FROM v, r"
        }
        "ab_test_conversions" => {
            "WITH v AS (INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template) \
                        VALUES ($1, 'email', 'c' || length($2) || md5($2), 's', 'b') RETURNING id), \
                  c AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, \
                        opened_by_payment, amount_at_risk, currency, opened_at) \
                        VALUES ($1, 'stripe', 'c_' || $2, 'c_' || $2, 100, 'usd', now()) RETURNING id) \
             INSERT INTO ab_test_conversions (company_id, variant_id, case_id, kind, amount) \
             SELECT $1, v.id, c.id, 'conversion', 100 FROM v, c"
        }
        "delivery_attempts" => {
            "WITH c AS (INSERT INTO recovery_cases (company_id, provider, membership_external_id, \
                        opened_by_payment, amount_at_risk, currency, opened_at) \
                        VALUES ($1, 'stripe', 'd_' || $2, 'd_' || $2, 100, 'usd', now()) RETURNING id), \
                  r AS (INSERT INTO reminders (company_id, case_id, offset_hours, due_at) \
                        SELECT $1, c.id, 0, now() FROM c RETURNING id) \
             INSERT INTO delivery_attempts (company_id, reminder_id, attempt, status_code) \
             SELECT $1, r.id, 1, 200 FROM r"
        }
        "api_keys" => {
            "INSERT INTO api_keys (key_id, company_id, secret_sha256, scopes) \
             VALUES (substr(md5($1 || $2), 1, 16), $1, sha256(convert_to($2, 'UTF8')), ARRAY['admin'])"
        }
        "privacy_requests" => {
            "INSERT INTO privacy_requests (company_id, kind, subject_hash, requested_by, status) \
             VALUES ($1, 'export', encode(sha256(convert_to($2, 'UTF8')), 'hex'), 'operator:t', 'completed')"
        }
        "audit_log" => {
            "INSERT INTO audit_log (company_id, actor, action, target) \
             VALUES ($1, 'operator:matrix', 'test.fixture', $2)"
        }
        "source_activity" => {
            "INSERT INTO source_activity (company_id, source_id, provider, events, first_received_at, \
             last_received_at) VALUES ($1, $2, 'stripe', 1, now(), now())"
        }
        _ => return None,
    })
}

/// Tenant tables the application role may only append to (no SELECT, UPDATE or DELETE at all):
/// the matrix proves the insert policy and that every other verb is refused outright.
const APPEND_ONLY: [&str; 1] = ["audit_log"];

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

fn is_rls_violation(result: Result<u64, tokio_postgres::Error>) -> bool {
    matches!(result, Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE))
}

/// Runs `body` in a transaction as the app role with `company` as tenant (None: no tenant),
/// then rolls back, so each probe starts from the same rows.
async fn as_tenant(
    app: &mut Client,
    company: Option<&str>,
    probe: &str,
) -> Result<u64, tokio_postgres::Error> {
    let tx = app.transaction().await?;
    if let Some(company) = company {
        tx.execute("SELECT set_company_context($1)", &[&company])
            .await?;
    }
    let result = tx.execute(probe, &[]).await;
    tx.rollback().await?;
    result
}

async fn insert_as(
    app: &mut Client,
    company: Option<&str>,
    sql: &str,
    row_company: &str,
    key: &str,
) -> Result<u64, tokio_postgres::Error> {
    let tx = app.transaction().await?;
    if let Some(company) = company {
        tx.execute("SELECT set_company_context($1)", &[&company])
            .await?;
    }
    let result = tx.execute(sql, &[&row_company, &key]).await;
    tx.rollback().await?;
    result
}

async fn select_count(app: &mut Client, company: Option<&str>, sql: &str) -> i64 {
    let tx = app.transaction().await.unwrap();
    if let Some(company) = company {
        tx.execute("SELECT set_company_context($1)", &[&company])
            .await
            .unwrap();
    }
    let n: i64 = tx.query_one(sql, &[]).await.unwrap().get(0);
    tx.rollback().await.unwrap();
    n
}

#[tokio::test]
async fn every_tenant_table_isolates_tenants_for_every_verb() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let mut app = db.app().await;

    let tables = audit::tenant_tables(&admin).await.unwrap();
    assert!(
        tables.len() >= 3,
        "expected the core tenant tables, found {tables:?}"
    );

    // Rows for both tenants, written by the owner (a superuser locally: RLS does not apply).
    let companies = fixture("companies").unwrap();
    for company in [A, B] {
        admin
            .execute(companies, &[&company, &format!("{company} name")])
            .await
            .unwrap();
    }
    for table in &tables {
        let Some(insert) = fixture(table) else {
            panic!("tenant table {table} has no fixture in tests/it/tenancy.rs: add one so the matrix covers it");
        };
        if table != "companies" {
            for company in [A, B] {
                admin
                    .execute(insert, &[&company, &format!("{table}_{company}_seed")])
                    .await
                    .unwrap();
            }
        }
    }

    for table in &tables {
        let insert = fixture(table).unwrap();
        let rows_of_b = format!("SELECT count(*) FROM {table} WHERE company_id = '{B}'");
        let b_before = count(&admin, &rows_of_b).await;
        let total_before = count(&admin, &format!("SELECT count(*) FROM {table}")).await;
        assert!(b_before >= 1, "{table}: fixture rows missing");

        if APPEND_ONLY.contains(&table.as_str()) {
            for probe in [
                format!("SELECT count(*) FROM {table}"),
                format!("UPDATE {table} SET company_id = company_id"),
                format!("DELETE FROM {table}"),
            ] {
                assert!(
                    is_rls_violation(as_tenant(&mut app, Some(A), &probe).await),
                    "{table} is append-only: `{probe}` must be refused to the app role"
                );
            }
        } else {
            assert_readable_only_by_its_tenant(&mut app, table).await;
        }

        // INSERT
        assert!(
            is_rls_violation(insert_as(&mut app, Some(A), insert, B, "x_insert_b").await),
            "{table}: tenant A must not insert a row for tenant B"
        );
        assert!(
            is_rls_violation(insert_as(&mut app, None, insert, A, "x_insert_none").await),
            "{table}: a session with no tenant must not insert"
        );
        if table != "companies" {
            assert_eq!(
                insert_as(&mut app, Some(A), insert, A, "x_insert_a")
                    .await
                    .unwrap(),
                1,
                "{table}: tenant A may insert its own rows"
            );
        }

        if !APPEND_ONLY.contains(&table.as_str()) {
            assert_changed_only_by_its_tenant(&mut app, table).await;
        }

        // Nothing of B's changed, and nothing at all persisted.
        assert_eq!(
            count(&admin, &rows_of_b).await,
            b_before,
            "{table}: tenant B's rows changed"
        );
        assert_eq!(
            count(&admin, &format!("SELECT count(*) FROM {table}")).await,
            total_before,
            "{table}: rows changed"
        );
    }
}

async fn assert_readable_only_by_its_tenant(app: &mut Client, table: &str) {
    // SELECT
    assert_eq!(
        select_count(app, None, &format!("SELECT count(*) FROM {table}")).await,
        0,
        "{table}: a session with no tenant must see no rows"
    );
    assert_eq!(
        select_count(
            app,
            Some(A),
            &format!("SELECT count(*) FROM {table} WHERE company_id <> '{A}'")
        )
        .await,
        0,
        "{table}: tenant A must not see other tenants' rows"
    );
    assert!(
        select_count(app, Some(A), &format!("SELECT count(*) FROM {table}")).await >= 1,
        "{table}: tenant A must see its own rows"
    );
}

async fn assert_changed_only_by_its_tenant(app: &mut Client, table: &str) {
    // UPDATE
    let touch_b = format!("UPDATE {table} SET company_id = company_id WHERE company_id = '{B}'");
    assert_eq!(
        as_tenant(app, Some(A), &touch_b).await.unwrap(),
        0,
        "{table}: tenant A must not update tenant B's rows"
    );
    assert_eq!(
        as_tenant(
            app,
            None,
            &format!("UPDATE {table} SET company_id = company_id")
        )
        .await
        .unwrap(),
        0,
        "{table}: a session with no tenant must update nothing"
    );
    let move_to_b = format!("UPDATE {table} SET company_id = '{B}' WHERE company_id = '{A}'");
    assert!(
        is_rls_violation(as_tenant(app, Some(A), &move_to_b).await),
        "{table}: tenant A must not hand a row to tenant B"
    );

    // DELETE
    let delete_b = format!("DELETE FROM {table} WHERE company_id = '{B}'");
    assert_eq!(
        as_tenant(app, Some(A), &delete_b).await.unwrap(),
        0,
        "{table}: tenant A must not delete tenant B's rows"
    );
    assert_eq!(
        as_tenant(app, None, &format!("DELETE FROM {table}"))
            .await
            .unwrap(),
        0,
        "{table}: a session with no tenant must delete nothing"
    );
}

#[tokio::test]
async fn migrated_schema_passes_the_tenancy_audit() {
    let db = TestDb::create().await;
    let findings = audit::tenancy_findings(&db.admin().await).await.unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
}

#[tokio::test]
async fn a_new_table_without_rls_fails_the_audit() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute("CREATE TABLE rogue_notes (company_id text NOT NULL, note text)")
        .await
        .unwrap();
    let findings = audit::tenancy_findings(&admin).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("rogue_notes") && f.contains("not enabled")),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("rogue_notes has no SELECT policy")),
        "{findings:#?}"
    );
    // And the matrix itself refuses a tenant table it has no fixture for.
    let tables = audit::tenant_tables(&admin).await.unwrap();
    assert!(tables.iter().any(|t| t == "rogue_notes") && fixture("rogue_notes").is_none());
}

#[tokio::test]
async fn a_security_definer_function_without_fixed_search_path_fails_the_audit() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "CREATE FUNCTION leaky_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
         AS $$ SELECT count(*) FROM webhook_events $$; \
         GRANT EXECUTE ON FUNCTION leaky_count() TO PUBLIC;",
        )
        .await
        .unwrap();
    let findings = audit::tenancy_findings(&admin).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("leaky_count has no fixed search_path")),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("leaky_count is executable by PUBLIC")),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn tenant_context_lasts_only_for_its_transaction() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .execute(fixture("companies").unwrap(), &[&A, &"A"])
        .await
        .unwrap();
    let mut app = db.app().await;
    let company = inlet_core::CompanyId::parse(A).unwrap();
    let tx = inlet_postgres::tenant_transaction(&mut app, &company)
        .await
        .unwrap();
    assert_eq!(count_tx(&tx).await, 1);
    tx.commit().await.unwrap();
    // Same connection, next unit of work: no tenant, no rows.
    assert_eq!(count(&app, "SELECT count(*) FROM companies").await, 0);
}

async fn count_tx(tx: &tokio_postgres::Transaction<'_>) -> i64 {
    tx.query_one("SELECT count(*) FROM companies", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn empty_or_null_tenant_context_is_refused() {
    let db = TestDb::create().await;
    let app = db.app().await;
    for bad in ["", "   "] {
        let err = app
            .execute("SELECT set_company_context($1)", &[&bad])
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PARAMETER_VALUE),
            "{bad:?}"
        );
    }
    let none: Option<&str> = None;
    assert!(app
        .execute("SELECT set_company_context($1)", &[&none])
        .await
        .is_err());
    // Setting the raw variable to an empty string also means no tenant, not every tenant.
    app.batch_execute("SET app.current_company_id = ''")
        .await
        .unwrap();
    let current: Option<String> = app
        .query_one("SELECT get_current_company_id()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, None);
}

/// Who may execute each SECURITY DEFINER function (they cross tenants): a new one must be
/// declared here, and no other role may execute it.
const DEFINER_EXECUTORS: [(&str, &[&str]); 14] = [
    ("fail_dead_exports", &[audit::OPS_ROLE]),
    // Authentication: finds a key's company before any tenant context exists.
    ("api_key_lookup", &[audit::APP_ROLE]),
    // The operator's health figures: aggregates over every tenant, never a row (the API answers
    // them to operator keys only).
    ("platform_health", &[audit::APP_ROLE]),
    // A trigger function: it runs as the owner for whoever inserts; nobody calls it.
    ("audit_chain", &[]),
    ("record_audit", &[audit::OPS_ROLE, audit::SCHEDULER_ROLE]),
    ("claim_due_reminders", &[audit::SCHEDULER_ROLE]),
    ("release_reminders", &[audit::SCHEDULER_ROLE]),
    ("mark_silent_sources", &[audit::OPS_ROLE]),
    ("latest_queue_age", &[audit::OPS_ROLE]),
    ("requeue_stuck_reminders", &[audit::OPS_ROLE]),
    ("retention_delete_events", &[audit::OPS_ROLE]),
    ("retention_delete_attempts", &[audit::OPS_ROLE]),
    ("retention_drop_payloads", &[audit::OPS_ROLE]),
    ("fail_dead_reminders", &[audit::OPS_ROLE]),
];

/// Every SECURITY DEFINER function whose executors differ from [`DEFINER_EXECUTORS`].
async fn definer_findings(client: &Client) -> Vec<String> {
    let rows = client
        .query(
            "SELECT p.proname::text, p.oid::regprocedure::text FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.prosecdef ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut findings = Vec::new();
    for row in rows {
        let (name, signature): (String, String) = (row.get(0), row.get(1));
        let Some((_, allowed)) = DEFINER_EXECUTORS.iter().find(|(n, _)| *n == name) else {
            findings.push(format!(
                "SECURITY DEFINER function {signature} has no declared executors: add it to DEFINER_EXECUTORS in tests/it/tenancy.rs"
            ));
            continue;
        };
        for role in audit::FUNCTION_ROLES.iter().copied().chain(["public"]) {
            let may: bool = client
                .query_one(
                    "SELECT has_function_privilege($1, $2::text::regprocedure, 'EXECUTE')",
                    &[&role, &signature],
                )
                .await
                .unwrap()
                .get(0);
            if may != allowed.contains(&role) {
                findings.push(format!(
                    "{signature}: {role} {} execute it",
                    if may { "may" } else { "may not" }
                ));
            }
        }
    }
    findings
}

#[tokio::test]
async fn every_security_definer_function_is_executable_by_its_declared_roles_only() {
    let db = TestDb::create().await;
    let findings = definer_findings(&db.admin().await).await;
    assert!(findings.is_empty(), "{findings:#?}");
}

#[tokio::test]
async fn a_new_security_definer_function_without_declared_executors_fails_the_matrix() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "CREATE FUNCTION count_everything() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             SET search_path = pg_catalog, public AS $$ SELECT count(*) FROM reminders $$; \
             REVOKE ALL ON FUNCTION count_everything() FROM PUBLIC; \
             GRANT EXECUTE ON FUNCTION count_everything() TO inlet_app; \
             GRANT EXECUTE ON FUNCTION release_reminders(bigint[]) TO inlet_app;",
        )
        .await
        .unwrap();
    let findings = definer_findings(&admin).await;
    assert!(
        findings
            .iter()
            .any(|f| f.contains("count_everything() has no declared executors")),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f == "release_reminders(bigint[]): inlet_app may execute it"),
        "{findings:#?}"
    );
}
