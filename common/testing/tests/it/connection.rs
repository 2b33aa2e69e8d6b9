//! The consumer's connection against the real server.

use std::time::{Duration, Instant};

use inlet_postgres::{Database, DbSettings, DbUnavailable};
use inlet_testing::TestDb;
use tokio_postgres::error::SqlState;

fn settings(url: &str) -> DbSettings {
    DbSettings {
        statement_timeout: Duration::from_millis(300),
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(2),
        ..DbSettings::new(url)
    }
}

#[tokio::test]
async fn the_connection_opens_on_first_use_with_the_statement_timeout_set() {
    let db = TestDb::create().await;
    let database = Database::new(settings(&db.app_url));
    let client = database.client().await.unwrap();
    let timeout: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "300ms");
    let slow = client.query("SELECT pg_sleep(2)", &[]).await.unwrap_err();
    assert_eq!(
        slow.code(),
        Some(&SqlState::QUERY_CANCELED),
        "a runaway statement is cut off"
    );
}

#[tokio::test]
async fn a_terminated_connection_is_replaced_on_next_use() {
    let db = TestDb::create().await;
    let database = Database::new(settings(&db.app_url));
    let first: i32 = database
        .client()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    db.admin()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&first])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second: i32 = database
        .client()
        .await
        .unwrap()
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(first, second);
}

#[tokio::test]
async fn while_the_database_is_down_callers_fail_at_once_then_retry_after_a_growing_wait() {
    let database = Database::new(settings(
        "postgres://inlet_app@127.0.0.1:1/inlet?connect_timeout=2",
    ));
    assert!(matches!(
        database.client().await.unwrap_err(),
        DbUnavailable::Unreachable(_)
    ));
    let started = Instant::now();
    let backing_off = database.client().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "no connection attempt while backing off"
    );
    assert!(
        matches!(backing_off, DbUnavailable::BackingOff(wait, 1) if wait <= Duration::from_millis(200)),
        "{backing_off:?}"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        matches!(
            database.client().await.unwrap_err(),
            DbUnavailable::Unreachable(_)
        ),
        "attempts again after the wait"
    );
    assert!(
        matches!(database.client().await.unwrap_err(), DbUnavailable::BackingOff(wait, 2) if wait > Duration::from_millis(200)),
        "the wait doubles"
    );
}

#[tokio::test]
async fn database_errors_map_to_the_consumers_error_classes() {
    use inlet_core::Failure;
    use inlet_postgres::failure_for;
    let db = TestDb::create().await;
    let app = db.app().await;

    app.batch_execute("SET statement_timeout = '50ms'")
        .await
        .unwrap();
    let timeout = app.query("SELECT pg_sleep(1)", &[]).await.unwrap_err();
    assert!(
        matches!(failure_for(&timeout), Failure::Transient(_)),
        "a timeout is worth retrying"
    );

    let bad_data = app
        .query("SELECT 'not a number'::int", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(failure_for(&bad_data), Failure::Permanent(p) if p.reason.starts_with("22P02"))
    );

    let pid: i32 = app
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    db.admin()
        .await
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = app.query("SELECT 1", &[]).await.unwrap_err();
    assert!(
        matches!(failure_for(&gone), Failure::TransientBatch(_)),
        "a lost connection stops the batch"
    );
}
