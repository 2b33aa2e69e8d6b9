//! The application role cannot escape row-level security: no owner role, no bypass, no catalog
//! secrets, no schema changes.

use inlet_testing::TestDb;
use tokio_postgres::error::SqlState;

fn denied(result: Result<impl Sized, tokio_postgres::Error>) -> bool {
    matches!(result, Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE))
}

#[tokio::test]
async fn app_role_is_not_superuser_cannot_bypass_rls_and_owns_nothing() {
    let db = TestDb::create().await;
    let app = db.app().await;
    let row = app
        .query_one(
            "SELECT current_user::text, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
                    (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
               FROM pg_roles r WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "inlet_app");
    assert!(!row.get::<_, bool>(1), "superuser");
    assert!(!row.get::<_, bool>(2), "bypassrls");
    assert!(!row.get::<_, bool>(3), "createrole");
    assert!(!row.get::<_, bool>(4), "createdb");
    assert_eq!(row.get::<_, i64>(5), 0, "owns relations");
}

#[tokio::test]
async fn app_role_cannot_set_role_to_the_owner() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let owner: String = admin
        .query_one(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'webhook_events'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let app = db.app().await;
    assert!(
        denied(app.batch_execute(&format!("SET ROLE \"{owner}\"")).await),
        "SET ROLE {owner}"
    );
    assert!(denied(
        app.batch_execute(&format!("SET SESSION AUTHORIZATION \"{owner}\""))
            .await
    ));
}

#[tokio::test]
async fn app_role_cannot_turn_row_security_off() {
    let db = TestDb::create().await;
    let app = db.app().await;
    // Allowed to set, but any query that RLS would filter then errors instead of showing all.
    app.batch_execute("SET row_security = off").await.unwrap();
    let err = app
        .query("SELECT * FROM webhook_events", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{err}");
    app.batch_execute("SET row_security = on").await.unwrap();
    for ddl in [
        "ALTER TABLE webhook_events DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE webhook_events NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_select ON webhook_events",
        "ALTER ROLE inlet_app BYPASSRLS",
    ] {
        assert!(
            denied(app.batch_execute(ddl).await),
            "{ddl} must be refused"
        );
    }
}

#[tokio::test]
async fn app_role_cannot_read_pg_authid_or_change_the_schema() {
    let db = TestDb::create().await;
    let app = db.app().await;
    assert!(denied(
        app.query("SELECT rolname, rolpassword FROM pg_authid", &[])
            .await
    ));
    assert!(denied(
        app.batch_execute("CREATE TABLE sneaky (id int)").await
    ));
    assert!(denied(
        app.query("SELECT * FROM schema_migrations", &[]).await
    ));
    assert!(denied(
        app.execute("SELECT enable_tenancy('companies')", &[]).await
    ));
}

/// One company with `n` pending reminders due now; returns their ids.
async fn due_reminders(db: &TestDb, n: i64) -> Vec<i64> {
    let admin = db.admin().await;
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B');
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             VALUES ('co_a', 'stripe', 'sub_a', 'in_a', 100, 'usd', now()),
                    ('co_b', 'stripe', 'sub_b', 'in_b', 100, 'usd', now());",
        )
        .await
        .unwrap();
    let rows = admin
        .query(
            "INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
             SELECT c.company_id, c.id, o, now() - interval '1 minute'
               FROM recovery_cases c, generate_series(1, $1::int8) o
             RETURNING id",
            &[&n],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn statuses(db: &TestDb) -> Vec<String> {
    db.admin()
        .await
        .query("SELECT status FROM reminders ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_app_role_may_not_claim_or_release_reminders_across_tenants() {
    let db = TestDb::create().await;
    let ids = due_reminders(&db, 1).await;
    let app = db.app().await;
    app.execute("SELECT set_company_context('co_a')", &[])
        .await
        .unwrap();
    assert!(denied(
        app.query("SELECT * FROM claim_due_reminders(now(), 10)", &[])
            .await
    ));
    assert!(denied(
        app.query("SELECT release_reminders($1)", &[&ids]).await
    ));
    assert_eq!(statuses(&db).await, ["pending", "pending"]);
}

#[tokio::test]
async fn the_scheduler_claims_and_releases_only_what_it_claimed_in_its_own_run() {
    let db = TestDb::create().await;
    let ids = due_reminders(&db, 1).await;
    let mut scheduler = db.scheduler().await;
    // The scheduler reads no table itself: only through its two functions.
    assert!(denied(
        scheduler.query("SELECT * FROM reminders", &[]).await
    ));

    // Another run claimed both reminders and committed: this run cannot put them back.
    let claimed = scheduler
        .query(
            "SELECT reminder_id FROM claim_due_reminders(now(), 10)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(statuses(&db).await, ["enqueued", "enqueued"]);
    let released: i32 = scheduler
        .query_one("SELECT release_reminders($1)", &[&ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(released, 0, "ids not claimed in this run change nothing");
    assert_eq!(statuses(&db).await, ["enqueued", "enqueued"]);

    // Within one run (one transaction), what it claimed it may release.
    db.admin()
        .await
        .execute("UPDATE reminders SET status = 'pending'", &[])
        .await
        .unwrap();
    let tx = scheduler.transaction().await.unwrap();
    let claimed: Vec<i64> = tx
        .query("SELECT reminder_id FROM claim_due_reminders(now(), 1)", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let released: i32 = tx
        .query_one("SELECT release_reminders($1)", &[&ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(released, 1, "only the one claimed in this run: {claimed:?}");
    tx.commit().await.unwrap();
    assert_eq!(statuses(&db).await, ["pending", "pending"]);
}
