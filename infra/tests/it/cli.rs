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

#[tokio::test]
async fn migrate_verify_matches_then_fails_on_a_changed_migration_and_records_both_runs() {
    let db = TestDb::create_empty().await;
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(migrations_dir()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    let dir = tmp.path().to_str().unwrap();
    let env = [
        ("DATABASE_ADMIN_URL", db.admin_url.as_str()),
        ("INLET_ENV", "staging"),
    ];
    assert!(inlet(&["migrate", "--dir", dir], &env).status.success());

    let ok = inlet(
        &["migrate", "verify", "--dir", dir, "--commit", "0123abcd"],
        &env,
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("match (commit 0123abcd, staging"),
        "{}",
        text(&ok)
    );

    std::fs::write(tmp.path().join("003_billing.sql"), "-- rewritten history\n").unwrap();
    let bad = inlet(
        &["migrate", "verify", "--dir", dir, "--commit", "0123abcd"],
        &env,
    );
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("MISMATCH 003_billing.sql: changed since it was applied"),
        "{}",
        text(&bad)
    );

    let admin = db.admin().await;
    let runs = admin
        .query(
            "SELECT commit_sha, environment, result, duration_ms, findings \
             FROM migration_verifications ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let runs: Vec<(String, String, String, i32, Vec<String>)> = runs
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        (runs[0].0.as_str(), runs[0].1.as_str(), runs[0].2.as_str()),
        ("0123abcd", "staging", "match")
    );
    assert!(runs[0].4.is_empty() && runs[0].3 >= 0);
    assert_eq!(runs[1].2, "mismatch");
    assert!(
        runs[1].4[0].starts_with("003_billing.sql: changed"),
        "{runs:?}"
    );

    // The record is append-only, for the owner too.
    let err = admin
        .execute("DELETE FROM migration_verifications", &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
        "{err:?}"
    );
}

#[tokio::test]
async fn migrate_verify_refuses_a_bad_commit_or_environment_and_records_nothing() {
    let db = TestDb::create().await;
    let dir = migrations_dir();
    let dir = dir.to_str().unwrap();
    let env = [("DATABASE_ADMIN_URL", db.admin_url.as_str())];
    for (flag, value, says) in [
        ("--commit", "'; DROP TABLE x; --", "--commit must be"),
        ("--environment", "Prod uction", "--environment must be"),
    ] {
        let out = inlet(&["migrate", "verify", "--dir", dir, flag, value], &env);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    let admin = db.admin().await;
    let n: i64 = admin
        .query_one("SELECT count(*) FROM migration_verifications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn audit_verify_names_the_row_a_superuser_altered_with_the_trigger_disabled() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B');
             SELECT record_audit('co_a', 'operator:alice', 'key.create', 'k' || n, NULL, '{}')
               FROM generate_series(1, 5) n;
             SELECT record_audit('co_b', 'operator:alice', 'key.create', 'kb', NULL, '{}');",
        )
        .await
        .unwrap();
    let env = [("DATABASE_ADMIN_URL", db.admin_url.as_str())];
    let ok = inlet(&["audit", "verify"], &env);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("2 chain(s), 6 row(s), every link holds"),
        "{}",
        text(&ok)
    );

    admin
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER USER;
             UPDATE audit_log SET target = 'k-forged' WHERE company_id = 'co_a' AND seq = 3;
             ALTER TABLE audit_log ENABLE TRIGGER USER;",
        )
        .await
        .unwrap();
    let bad = inlet(&["audit", "verify"], &env);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("BROKEN chain co_a at seq 3:") && text(&bad).contains("was altered"),
        "{}",
        text(&bad)
    );
    assert!(
        text(&bad).contains("1 of 2 chain(s) broken"),
        "{}",
        text(&bad)
    );
    // The other company's chain alone still verifies.
    let b = inlet(&["audit", "verify", "--company", "co_b"], &env);
    assert!(b.status.success(), "{}", text(&b));
}

#[tokio::test]
async fn keys_are_printed_once_listed_without_secret_revoked_and_bad_input_writes_nothing() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute("INSERT INTO companies (company_id, name) VALUES ('co_a', 'A')")
        .await
        .unwrap();
    let env = [
        ("DATABASE_ADMIN_URL", db.admin_url.as_str()),
        ("INLET_OPERATOR", "alice"),
        ("RUST_LOG", "debug"),
    ];
    for (args, says) in [
        (
            vec![
                "keys",
                "create",
                "--company",
                "co_a",
                "--scopes",
                "events:write",
            ],
            "unknown scope \"events:write\"",
        ),
        (
            vec![
                "keys",
                "create",
                "--company",
                "co_nobody",
                "--scopes",
                "admin",
            ],
            "company co_nobody does not exist",
        ),
        (
            vec![
                "keys",
                "create",
                "--company",
                "co_a",
                "--scopes",
                "admin",
                "--expires",
                "yesterday",
            ],
            "a duration (90d, 12h) or an RFC 3339 time",
        ),
        (
            vec![
                "keys",
                "create",
                "--company",
                "co_a",
                "--scopes",
                "admin",
                "--expires",
                "2020-01-01T00:00:00Z",
            ],
            "not in the future",
        ),
        (
            vec!["keys", "create", "--company", "co a", "--scopes", "admin"],
            "--company \"co a\"",
        ),
        (
            vec!["keys", "revoke", "--company", "co_a", "0123456789abcdef"],
            "no key 0123456789abcdef for co_a",
        ),
    ] {
        let out = inlet(&args, &env);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let n: i64 = admin
        .query_one("SELECT count(*) FROM api_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    let created = inlet(
        &[
            "keys",
            "create",
            "--company",
            "co_a",
            "--scopes",
            "events:read,payloads:read",
            "--expires",
            "30d",
            "--name",
            "billing sync",
        ],
        &env,
    );
    assert!(created.status.success(), "{}", text(&created));
    let token = String::from_utf8(created.stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.starts_with("ink_") && token.len() == 85, "{token}");
    let key_id = &token[4..20];
    // Printed once on stdout; stderr (where logs go) names the id, never the key.
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(
        stderr.contains(key_id) && !stderr.contains(&token[21..]),
        "{stderr}"
    );

    let listed = inlet(&["keys", "list", "--company", "co_a"], &env);
    assert!(listed.status.success(), "{}", text(&listed));
    let listed = text(&listed);
    assert!(
        listed.contains(key_id) && listed.contains("billing sync"),
        "{listed}"
    );
    assert!(
        listed.contains("events:read,payloads:read") && listed.contains("last used never"),
        "{listed}"
    );
    assert!(!listed.contains(&token[21..]), "{listed}");

    let revoked = inlet(&["keys", "revoke", "--company", "co_a", key_id], &env);
    assert!(
        text(&revoked).contains(&format!("key {key_id} revoked")),
        "{}",
        text(&revoked)
    );
    let listed = text(&inlet(&["keys", "list", "--company", "co_a"], &env));
    assert!(listed.contains("revoked 20"), "{listed}");
    let actors: Vec<String> = admin
        .query(
            "SELECT actor || ' ' || action FROM audit_log ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actors,
        ["operator:alice key.create", "operator:alice key.revoke"]
    );
}

#[tokio::test]
async fn offboarding_asks_first_then_deletes_the_companys_sources_and_rows_and_no_one_elses() {
    let db = TestDb::create().await;
    let fx = inlet_testing::AwsFixture::create().await;
    let env = [
        ("DATABASE_ADMIN_URL", db.admin_url.as_str()),
        ("SOURCES_TABLE", fx.sources_table.as_str()),
    ];
    for company in ["co_leaving", "co_staying"] {
        assert!(
            inlet(&["companies", "add", company, "--name", company], &env)
                .status
                .success()
        );
        let source = format!("src_{company}");
        let added = inlet(
            &[
                "sources",
                "add",
                "--provider",
                "stripe",
                "--company",
                company,
                "--id",
                &source,
            ],
            &env,
        );
        assert!(added.status.success(), "{}", text(&added));
    }
    let asked = inlet(&["companies", "delete", "co_leaving"], &env);
    assert!(asked.status.success(), "{}", text(&asked));
    assert!(
        text(&asked).contains("would delete company co_leaving: its 1 source(s) (src_co_leaving)"),
        "{}",
        text(&asked)
    );
    let listed = text(&inlet(&["sources", "list"], &env));
    assert!(
        listed.contains("src_co_leaving"),
        "nothing deleted without --yes: {listed}"
    );

    let done = inlet(&["companies", "delete", "co_leaving", "--yes"], &env);
    assert!(done.status.success(), "{}", text(&done));
    assert!(
        text(&done).contains("deleted source src_co_leaving"),
        "{}",
        text(&done)
    );
    assert!(
        text(&done).contains("company co_leaving deleted: 1 companies"),
        "{}",
        text(&done)
    );
    let listed = text(&inlet(&["sources", "list"], &env));
    assert!(
        !listed.contains("src_co_leaving") && listed.contains("src_co_staying"),
        "{listed}"
    );
    let companies = text(&inlet(&["companies", "list"], &env));
    assert!(
        !companies.contains("co_leaving") && companies.contains("co_staying"),
        "{companies}"
    );
    let again = inlet(&["companies", "delete", "co_leaving", "--yes"], &env);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again).contains("company co_leaving does not exist"),
        "{}",
        text(&again)
    );
}

/// The export's peak resident memory, read from /proc while it runs (VmHWM only grows).
fn export_peak_kib(env: &[(&str, &str)], member: &str) -> (u64, usize) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inlet"));
    command
        .args([
            "privacy",
            "export",
            "--company",
            "co_big",
            "--member",
            member,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().count()
    });
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let lines = reader.join().unwrap();
    (peak, lines)
}

/// `count` ledger events of company `co_big`, each a sealed 1 KiB payload naming `member`.
pub(crate) async fn seed_member_events(admin: &tokio_postgres::Client, member: &str, count: usize) {
    use inlet_core::crypto::{context, KeyRing};
    let keys = KeyRing::from_env().unwrap();
    for chunk in 0..count.div_ceil(5_000) {
        let (mut ids, mut sealed, mut kids) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..5_000.min(count - chunk * 5_000) {
            let event = format!("evt_{member}_{chunk}_{i}");
            let body = format!(
                r#"{{"id":"{event}","type":"invoice.paid","data":{{"object":{{"customer":"{member}","pad":"{}"}}}}}}"#,
                "x".repeat(900)
            );
            let (kid, bytes) = keys.seal_bytes(
                body.as_bytes(),
                &context::payload("co_big", "src_big", &event),
            );
            ids.push(event);
            sealed.push(bytes);
            kids.push(kid);
        }
        admin
            .execute(
                "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, \
                 event_type, received_at, status, payload_enc, payload_key_id) \
                 SELECT 'co_big', 'src_big', 'stripe', e, 'invoice.paid', now(), 'completed', p, k \
                   FROM unnest($1::text[], $2::bytea[], $3::text[]) AS t(e, p, k)",
                &[&ids, &sealed, &kids],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn exporting_a_member_with_50000_events_stays_in_constant_memory_under_128_mib() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_big', 'Big');
             INSERT INTO members (company_id, provider, external_id) VALUES
                 ('co_big', 'stripe', 'cus_small'), ('co_big', 'stripe', 'cus_big');",
        )
        .await
        .unwrap();
    seed_member_events(&admin, "cus_small", 5_000).await;
    seed_member_events(&admin, "cus_big", 50_000).await;
    let env = [("DATABASE_ADMIN_URL", db.admin_url.as_str())];
    let (small_kib, small_lines) = export_peak_kib(&env, "cus_small");
    let (big_kib, big_lines) = export_peak_kib(&env, "cus_big");
    eprintln!("export peak RSS: 5,000 events {small_kib} KiB, 50,000 events {big_kib} KiB");
    assert_eq!(
        (small_lines, big_lines),
        (5_001, 50_001),
        "the member line and every event"
    );
    assert!(big_kib < 128 * 1024, "50,000 events took {big_kib} KiB");
    assert!(
        (big_kib as f64) < (small_kib as f64) * 1.5,
        "memory grew with the export: {small_kib} KiB for 5,000 events, {big_kib} KiB for 50,000"
    );
}
