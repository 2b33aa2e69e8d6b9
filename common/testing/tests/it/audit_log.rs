//! The audit log is append-only for every role, each tenant appends only to its own chain, and
//! concurrent writers of one chain still form one unbroken chain.

use inlet_core::CompanyId;
use inlet_domain::audit::{self, Actor, Entry};
use inlet_postgres::Connection;
use inlet_testing::TestDb;
use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn companies(admin: &Client) {
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B')",
        )
        .await
        .unwrap();
}

async fn append(connection: &mut Connection, company: &str, action: &'static str, target: &str) {
    let company = CompanyId::parse(company).unwrap();
    let (tx, _) = connection.tenant_tx(&company).await.unwrap();
    let actor = Actor::Function("tenant-api");
    audit::record(
        &tx,
        &Entry {
            company: Some(&company),
            actor: &actor,
            action,
            target,
            request_id: Some("req-1"),
            details: json!({"count": 1}),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn refused(result: Result<u64, tokio_postgres::Error>) -> bool {
    matches!(result, Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE))
}

#[tokio::test]
async fn update_delete_and_truncate_of_the_audit_log_fail_for_the_app_role_and_the_owner() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    companies(&admin).await;
    let mut app = Connection::from(db.app().await);
    append(&mut app, "co_a", "key.create", "k1").await;

    for (who, client) in [("inlet_app", &*app), ("the owner", &admin)] {
        for sql in [
            "UPDATE audit_log SET target = 'x'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ] {
            // In co_a's context, so row-level security is not what stops it.
            let tx_sql = format!("BEGIN; SELECT set_company_context('co_a'); {sql}; COMMIT");
            let result = client.batch_execute(&tx_sql).await;
            let _ = client.batch_execute("ROLLBACK").await;
            assert!(
                refused(result.map(|_| 0)),
                "{sql} was not refused for {who}"
            );
        }
    }
    // The owner's refusal comes from the trigger (a superuser passes every privilege check).
    let err = admin
        .execute("DELETE FROM audit_log", &[])
        .await
        .unwrap_err();
    assert!(
        err.as_db_error().unwrap().message().contains("append-only"),
        "{err:?}"
    );
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn the_app_role_appends_only_to_its_own_tenant_and_cannot_read_the_log() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    companies(&admin).await;
    let app = db.app().await;
    let forged = app
        .batch_execute(
            "BEGIN; SELECT set_company_context('co_a');
             INSERT INTO audit_log (company_id, actor, action) VALUES ('co_b', 'operator:x', 'key.revoke');
             COMMIT",
        )
        .await;
    let _ = app.batch_execute("ROLLBACK").await;
    assert!(refused(forged.map(|_| 0)), "tenant A wrote into B's chain");
    let system = app
        .batch_execute(
            "BEGIN; SELECT set_company_context('co_a');
             INSERT INTO audit_log (company_id, actor, action) VALUES (NULL, 'operator:x', 'retention.run');
             COMMIT",
        )
        .await;
    let _ = app.batch_execute("ROLLBACK").await;
    assert!(
        refused(system.map(|_| 0)),
        "the app role wrote a system row"
    );
    let read = app.query("SELECT * FROM audit_log", &[]).await;
    assert!(matches!(read, Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)));
    let heads = app.query("SELECT * FROM audit_heads", &[]).await;
    assert!(matches!(heads, Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)));
    // Sequence, time and hashes are the trigger's: a writer cannot choose them.
    let mut app = Connection::from(app);
    append(&mut app, "co_a", "key.create", "k1").await;
    let row = admin
        .query_one("SELECT seq, length(hash) FROM audit_log", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i32>(1)), (1, 32));
}

#[tokio::test]
async fn concurrent_writers_of_one_chain_form_one_unbroken_chain() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    companies(&admin).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = db.app_url.clone();
        writers.push(tokio::spawn(async move {
            let mut app = Connection::from(inlet_postgres::connect(&url).await.unwrap());
            for i in 0..10 {
                let company = if i % 3 == 0 { "co_b" } else { "co_a" };
                append(&mut app, company, "replay", &format!("evt_{w}_{i}")).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let report = audit::verify(&admin, None).await.unwrap();
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert_eq!((report.chains, report.rows), (2, 80));
    let seqs: Vec<i64> = admin
        .query(
            "SELECT seq FROM audit_log WHERE company_id = 'co_a' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn removing_the_newest_rows_or_a_whole_chain_is_found() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    companies(&admin).await;
    let mut app = Connection::from(db.app().await);
    for i in 0..4 {
        append(&mut app, "co_a", "replay", &format!("evt_{i}")).await;
    }
    append(&mut app, "co_b", "replay", "evt_b").await;
    admin
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER USER;
             DELETE FROM audit_log WHERE company_id = 'co_a' AND seq >= 3;
             DELETE FROM audit_log WHERE company_id = 'co_b';
             ALTER TABLE audit_log ENABLE TRIGGER USER;",
        )
        .await
        .unwrap();
    let report = audit::verify(&admin, None).await.unwrap();
    let text: Vec<String> = report.broken.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].contains("co_a at seq 3") && text[0].contains("head records seq 4"),
        "{text:?}"
    );
    assert!(
        text[1].contains("co_b") && text[1].contains("no row is left"),
        "{text:?}"
    );
}
