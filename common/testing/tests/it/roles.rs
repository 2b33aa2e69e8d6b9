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
