//! The migration runner against a real server: idempotent, concurrent-safe, and refusing a
//! changed applied migration by name.

use std::path::Path;

use inlet_postgres::migrate::{self, MigrateError};
use inlet_testing::{migrations_dir, TestDb};

fn copy_migrations(to: &Path) {
    for entry in std::fs::read_dir(migrations_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[tokio::test]
async fn applying_twice_applies_nothing_the_second_time_and_records_sha256() {
    let db = TestDb::create_empty().await;
    let mut admin = db.admin().await;
    let migrations = migrate::load_dir(&migrations_dir()).unwrap();
    let first = migrate::apply(&mut admin, &migrations).await.unwrap();
    assert_eq!(first.applied.len(), migrations.len());
    let second = migrate::apply(&mut admin, &migrations).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, migrations.len());

    let rows = admin
        .query(
            "SELECT name, sha256 FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let recorded: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(String, String)> = migrations
        .iter()
        .map(|m| (m.name.clone(), m.sha256.clone()))
        .collect();
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused_and_nothing_else_is_applied() {
    let db = TestDb::create_empty().await;
    let mut admin = db.admin().await;
    let dir = tempfile::tempdir().unwrap();
    copy_migrations(dir.path());
    migrate::apply(&mut admin, &migrate::load_dir(dir.path()).unwrap())
        .await
        .unwrap();

    // Edit an applied migration and add a new one after it.
    let core = dir.path().join("002_core.sql");
    let mut text = std::fs::read_to_string(&core).unwrap();
    text.push_str("\n-- an innocent-looking edit\n");
    std::fs::write(&core, text).unwrap();
    std::fs::write(
        dir.path().join("900_later.sql"),
        "CREATE TABLE later_marker (id int);",
    )
    .unwrap();

    let err = migrate::apply(&mut admin, &migrate::load_dir(dir.path()).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Changed { ref name, .. } if name == "002_core.sql"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("002_core.sql was changed after it was applied"),
        "{err}"
    );
    let later: Option<String> = admin
        .query_one("SELECT to_regclass('later_marker')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(later, None, "a refused run must apply nothing");
}

#[tokio::test]
async fn a_failing_migration_leaves_no_trace_and_names_itself() {
    let db = TestDb::create_empty().await;
    let mut admin = db.admin().await;
    let dir = tempfile::tempdir().unwrap();
    copy_migrations(dir.path());
    std::fs::write(
        dir.path().join("900_broken.sql"),
        "CREATE TABLE half_done (id int); SELECT * FROM no_such_table;",
    )
    .unwrap();
    let err = migrate::apply(&mut admin, &migrate::load_dir(dir.path()).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("900_broken.sql"), "{err}");
    let half: Option<String> = admin
        .query_one("SELECT to_regclass('half_done')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        half, None,
        "the failed migration's transaction must roll back"
    );
    let recorded: i64 = admin
        .query_one(
            "SELECT count(*) FROM schema_migrations WHERE version = 900",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 0);
}

#[tokio::test]
async fn concurrent_runners_apply_each_migration_once() {
    let db = TestDb::create_empty().await;
    let migrations = migrate::load_dir(&migrations_dir()).unwrap();
    let (mut one, mut two) = (db.admin().await, db.admin().await);
    let (a, b) = tokio::join!(
        migrate::apply(&mut one, &migrations),
        migrate::apply(&mut two, &migrations)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.applied.len() + b.applied.len(), migrations.len());
    let n: i64 = one
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, migrations.len());
}
