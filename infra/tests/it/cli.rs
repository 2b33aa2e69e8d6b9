use std::process::{Command, Output};
use std::time::{Duration, Instant};

use inlet_testing::{migrations_dir, required_env, TestDb};

fn inlet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inlet"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run inlet")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn migrate_applies_everything_once_then_nothing() {
    let db = TestDb::create_empty().await;
    let dir = migrations_dir();
    let dir = dir.to_str().unwrap();
    let env = [("DATABASE_ADMIN_URL", db.admin_url.as_str())];
    let first = inlet(&["migrate", "--dir", dir], &env);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("applied 001_tenancy.sql"),
        "{}",
        text(&first)
    );
    let second = inlet(&["migrate", "--dir", dir], &env);
    assert!(second.status.success(), "{}", text(&second));
    assert!(text(&second).contains("0 applied now"), "{}", text(&second));

    let audit = inlet(&["db", "audit"], &env);
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(
        text(&audit).contains("tenancy audit: clean"),
        "{}",
        text(&audit)
    );
}

#[tokio::test]
async fn migrate_refuses_a_changed_migration_by_name_with_exit_1() {
    let db = TestDb::create_empty().await;
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(migrations_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    let dir = tmp.path().to_str().unwrap();
    let env = [("DATABASE_ADMIN_URL", db.admin_url.as_str())];
    assert!(inlet(&["migrate", "--dir", dir], &env).status.success());
    std::fs::write(tmp.path().join("001_tenancy.sql"), "-- rewritten history\n").unwrap();
    let out = inlet(&["migrate", "--dir", dir], &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("migration 001_tenancy.sql was changed after it was applied"),
        "{}",
        text(&out)
    );
}

#[test]
fn unreachable_database_is_reported_with_the_fix_quickly() {
    let started = Instant::now();
    let dir = migrations_dir();
    let out = inlet(
        &["migrate", "--dir", dir.to_str().unwrap()],
        &[(
            "DATABASE_ADMIN_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/inlet",
        )],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(
        message.contains("cannot reach Postgres at postgres@127.0.0.1:1/inlet"),
        "{message}"
    );
    assert!(message.contains("make services"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}

#[test]
fn status_reports_both_services_when_they_run() {
    let out = inlet(&["status"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("postgres: ok"), "{}", text(&out));
    assert!(text(&out).contains("sqs, dynamodb: ok"), "{}", text(&out));
    let _ = required_env("AWS_ENDPOINT_URL");
}

#[test]
fn unreachable_emulator_is_reported_with_the_fix_within_bounded_time() {
    let started = Instant::now();
    let out = inlet(&["status"], &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("http://127.0.0.1:1 does not answer"),
        "{message}"
    );
    assert!(message.contains("make services"), "{message}");
}
