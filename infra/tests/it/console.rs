//! The console in a real browser: a local stack (the real `console`, `tenant-api`, intake and
//! consumer binaries, Postgres, moto), seeded here, then headless Chromium driven by Playwright
//! (infra/tests/console/console.test.mjs) through every view. Screenshots land in
//! target/console-screenshots/.

use std::time::Duration;

use inlet_core::api_key::Scope;
use inlet_core::crypto::KeyRing;
use inlet_lambda::console::session::Session;
use inlet_postgres::Connection;
use inlet_testing::TestDb;
use inlet_webhooks::intake::demo;

use crate::local::{count, repo, sample_body, tool_dir, until, Stack};
use crate::tenant_api::key;

const B: &str = "co_console_b";
const OPS: &str = "co_console_ops";
const B_MARKER: &str = "TENANT_B_ONLY_7f3a";

/// Tenant B: one event, one source, one case, each carrying B's marker.
async fn seed_b(db: &TestDb) -> i64 {
    let admin = db.admin().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO companies (company_id, name) VALUES ('{B}', 'B'), ('{OPS}', 'Operators');
             INSERT INTO source_activity (company_id, source_id, provider, events, first_received_at,
                 last_received_at) VALUES ('{B}', 'src_{B_MARKER}', 'stripe', 1, now(), now());
             INSERT INTO recovery_cases (company_id, provider, membership_external_id,
                 opened_by_payment, amount_at_risk, currency, opened_at)
                 VALUES ('{B}', 'stripe', 'sub_{B_MARKER}', 'in_{B_MARKER}', 777, 'usd', now());"
        ))
        .await
        .unwrap();
    admin
        .query_one(
            "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, \
             event_type, object_type, object_id, received_at, status, payload_min) VALUES \
             ($1, 'src_' || $2, 'stripe', 'evt_' || $2, 'invoice.paid', 'invoice', $2, now(), \
             'completed', jsonb_build_object('marker', $2::text)) RETURNING id",
            &[&B, &B_MARKER],
        )
        .await
        .unwrap()
        .get(0)
}

/// Tenant B's last minutes breach two objectives: processing took 30 s (p95 > 5 s) and 2 of
/// 20 failed (10 % > 1 %): the operator's health view shows the degraded banner.
async fn seed_breaches(db: &TestDb) {
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id,
                 event_type, received_at, processed_at, status)
             SELECT '{B}', 'src_slow', 'stripe', 'evt_slow_' || i, 'invoice.paid',
                    now() - interval '5 minutes', now() - interval '270 seconds',
                    CASE WHEN i <= 2 THEN 'failed' ELSE 'completed' END
               FROM generate_series(1, 20) i;"
        ))
        .await
        .unwrap();
}

/// Tenant A's A/B fixture: two variants over 150 cases with one sent reminder each; the first
/// has 100 sends (enough to be the best), 50 clicks and 25 conversions, the second 50 sends,
/// 16 clicks and 10 conversions.
async fn seed_ab(db: &TestDb) {
    db.admin()
        .await
        .batch_execute(&format!(
            "DO $$
             DECLARE v1 bigint; v2 bigint; v bigint; c bigint; r bigint;
             BEGIN
               INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
                 VALUES ('{co}', 'email', 'Friendly', 's', 'b') RETURNING id INTO v1;
               INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
                 VALUES ('{co}', 'email', 'Urgent', 's', 'b') RETURNING id INTO v2;
               FOR i IN 1..150 LOOP
                 v := CASE WHEN i % 3 = 0 THEN v2 ELSE v1 END;
                 INSERT INTO recovery_cases (company_id, provider, membership_external_id,
                     opened_by_payment, amount_at_risk, currency, opened_at)
                   VALUES ('{co}', 'stripe', 'sub_fx_' || i, 'in_fx_' || i, 4900, 'usd',
                           now() - i * interval '1 hour') RETURNING id INTO c;
                 INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status)
                   VALUES ('{co}', c, 0, now() - i * interval '1 hour' + interval '5 minutes', 'sent')
                   RETURNING id INTO r;
                 INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id, sent_at)
                   VALUES ('{co}', v, r, c, now() - i * interval '1 hour' + interval '5 minutes');
                 IF (v = v1 AND i % 2 = 0) OR (v = v2 AND i % 9 = 0) THEN
                   INSERT INTO ab_test_conversions (company_id, variant_id, case_id, reminder_id, kind)
                     VALUES ('{co}', v, c, r, 'click');
                 END IF;
                 IF (v = v1 AND i % 4 = 0) OR (v = v2 AND i % 15 = 0) THEN
                   INSERT INTO ab_test_conversions (company_id, variant_id, case_id, kind, amount, created_at)
                     VALUES ('{co}', v, c, 'conversion', 4900, now() - i * interval '1 hour' + interval '2 hours');
                   UPDATE recovery_cases SET status = 'recovered',
                          closed_at = now() - i * interval '1 hour' + interval '2 hours'
                    WHERE id = c;
                 END IF;
               END LOOP;
             END $$;",
            co = demo::DEMO_COMPANY
        ))
        .await
        .unwrap();
}

/// The Stripe sample with fresh ids and script in a field: the console must show it as text.
fn script_payload(dir: &std::path::Path) -> std::path::PathBuf {
    let mut payload: serde_json::Value =
        serde_json::from_slice(&sample_body("webhook-stripe")).unwrap();
    payload["id"] = "evt_console_script_1".into();
    payload["data"]["object"]["description"] =
        "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>".into();
    let file = dir.join("stripe-script.json");
    std::fs::write(&file, serde_json::to_vec(&payload).unwrap()).unwrap();
    file
}

#[tokio::test]
async fn the_console_works_in_a_real_browser_for_tenants_and_operators_and_keeps_them_apart() {
    let playwright = tool_dir("browser");
    let db = TestDb::create().await;
    let stack = Stack::for_db(&db, "con").await;
    stack.put_demo_sources().await;
    let dir = tempfile::tempdir().unwrap();

    // A poison event: demo_company does not exist yet, so Whop's event dead-letters.
    let whop = dir.path().join("whop.json");
    std::fs::write(&whop, sample_body("webhook-whop")).unwrap();
    stack.send_demo("whop", &whop).await;
    let stack_ref = &stack;
    until(Duration::from_secs(30), async || {
        let (_, listing) = stack_ref.cli(&["dlq", "list"]).await;
        listing.contains("unknown_tenant").then_some(())
    })
    .await;
    // The cause fixed (the operator redrives it in the browser).
    let (ok, output) = stack
        .cli(&["companies", "add", demo::DEMO_COMPANY, "--name", "Demo"])
        .await;
    assert!(ok, "{output}");

    // A second event for A, so the events view has more than the one the browser sends.
    stack
        .send_demo(
            "stripe",
            &repo("events/payloads/stripe-customer-created.json"),
        )
        .await;

    let b_event = seed_b(&db).await;
    seed_ab(&db).await;
    seed_breaches(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let (_, key_a) = key(&mut owner, demo::DEMO_COMPANY, &[Scope::Admin]).await;
    let (_, key_b) = key(&mut owner, B, &[Scope::Admin]).await;
    let (_, key_op) = key(&mut owner, OPS, &[Scope::Operator, Scope::EventsRead]).await;

    let keys = KeyRing::from_env().unwrap();
    let now = inlet_core::clock::now_ms() / 1000;
    let expired = Session::new(
        key_a.clone(),
        demo::DEMO_COMPANY.into(),
        vec![],
        now - 9 * 3600,
    );
    let foreign_ring =
        KeyRing::parse("k9:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=", None).unwrap();
    let foreign = Session::new(key_a.clone(), demo::DEMO_COMPANY.into(), vec![], now);
    let shots = repo("target/console-screenshots");

    let output = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(repo("infra/tests/console/console.test.mjs"))
        .env("PLAYWRIGHT_DIR", &playwright)
        .env("CONSOLE_URL", &stack.url)
        .env("KEY_A", &key_a)
        .env("KEY_B", &key_b)
        .env("KEY_OP", &key_op)
        .env("B_EVENT_ID", b_event.to_string())
        .env("B_MARKER", B_MARKER)
        .env("EXPIRED_COOKIE", expired.seal(&keys))
        .env("FOREIGN_COOKIE", foreign.seal(&foreign_ring))
        .env("INLET_BIN", env!("CARGO_BIN_EXE_inlet"))
        .env("SOURCES_TABLE", stack.sources_table())
        .env("SCRIPT_PAYLOAD", script_payload(dir.path()))
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "browser tests failed:\n{report}\n--- stack output (last 80 lines) ---\n{}",
        stack
            .output()
            .lines()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for name in [
        "events",
        "event-detail",
        "failures",
        "sources",
        "recovery",
        "ab",
        "health",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "no screenshot {name}"
        );
    }

    // What the browser did, seen from the database: B untouched, A's replays audited under A's
    // key, the redriven event processed once.
    assert_eq!(
        count(
            &db,
            &format!("SELECT replay_count::bigint FROM webhook_events WHERE id = {b_event}")
        )
        .await,
        0
    );
    assert!(
        count(&db, "SELECT count(*) FROM audit_log WHERE action = 'replay' AND company_id = 'demo_company'")
            .await
            >= 2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE provider = 'whop'"
        )
        .await,
        1
    );
    // No key and no session in the stack's logs.
    let logs = stack.output();
    for secret in [&key_a, &key_b, &key_op] {
        let tail = &secret[secret.len() - 64..];
        assert!(!logs.contains(tail), "a key's secret is in the logs");
    }
    assert!(
        !logs.contains("inlet_session="),
        "a session cookie is in the logs"
    );
}
