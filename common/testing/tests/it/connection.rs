//! The consumer's connection against the real server.

use std::time::{Duration, Instant};

use inlet_postgres::{Database, DbSettings, DbUnavailable, Plan};
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

/// A database with an empty table `steps` (n, v), and a connection to it.
async fn steps_table() -> (TestDb, inlet_postgres::Connection) {
    let db = TestDb::create_empty().await;
    db.admin()
        .await
        .batch_execute("CREATE TABLE steps (n int PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    let connection = inlet_postgres::Connection::from(db.admin().await);
    (db, connection)
}

/// The rows a plan's statements left in `steps`, in order.
async fn steps(db: &TestDb) -> Vec<(i32, String)> {
    db.admin()
        .await
        .query("SELECT n, v FROM steps ORDER BY n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_plan_sent_as_one_pipeline_runs_its_statements_in_the_order_pushed() {
    let (db, mut connection) = steps_table().await;
    // Twice: the first run prepares the statements, the second finds them prepared.
    let digits: Vec<String> = (0..100).map(|d| d.to_string()).collect();
    for n in [1_i32, 2] {
        let tx = connection.tx().await.unwrap();
        let mut plan = Plan::default();
        plan.push(
            "INSERT INTO steps (n, v) VALUES ($1, '')",
            inlet_postgres::params![n],
        );
        // Each appends to what the one before left: only the pushed order gives 0-1-...-99.
        for digit in &digits {
            plan.push(
                "UPDATE steps SET v = v || CASE WHEN v = '' THEN '' ELSE '-' END || $2 WHERE n = $1",
                inlet_postgres::params![n, digit.as_str()],
            );
        }
        tx.run(&plan).await.unwrap();
        tx.commit().await.unwrap();
    }
    let expected: String = (0..100)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("-");
    assert_eq!(steps(&db).await, [(1, expected.clone()), (2, expected)]);
}

#[tokio::test]
async fn a_failing_statement_in_a_plan_is_the_error_reported_and_nothing_of_the_plan_is_kept() {
    let (db, mut connection) = steps_table().await;
    let tx = connection.tx().await.unwrap();
    let mut plan = Plan::default();
    plan.push(
        "INSERT INTO steps (n, v) VALUES ($1, $2)",
        inlet_postgres::params![1_i32, "before"],
    );
    plan.push("SELECT 1 / $1::int", inlet_postgres::params![0_i32]);
    plan.push(
        "INSERT INTO steps (n, v) VALUES ($1, $2)",
        inlet_postgres::params![2_i32, "after"],
    );
    let error = tx.run(&plan).await.unwrap_err();
    // Not the "current transaction is aborted" of the statement after it.
    assert_eq!(error.0.code(), Some(&SqlState::DIVISION_BY_ZERO), "{error}");
    drop(tx);
    assert_eq!(steps(&db).await, []);
    // The connection is usable again, and the same statements run once the plan is sound.
    let tx = connection.tx().await.unwrap();
    let mut plan = Plan::default();
    plan.push(
        "INSERT INTO steps (n, v) VALUES ($1, $2)",
        inlet_postgres::params![1_i32, "before"],
    );
    plan.push("SELECT 1 / $1::int", inlet_postgres::params![1_i32]);
    tx.run(&plan).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(steps(&db).await, [(1, "before".to_owned())]);
}
