//! Migration 006 on the real server: A/B variants, their performance view and best-variant
//! choice, and the scheduler's cross-tenant claim of due reminders.

use inlet_testing::TestDb;

/// Company co_a with three recovery cases (ids 1-3 in this fresh database).
async fn setup() -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B');
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             SELECT 'co_a', 'stripe', 'sub_' || n, 'in_' || n, 4900, 'usd', now() FROM generate_series(1, 3) n;",
        )
        .await
        .unwrap();
    db
}

/// Inserts a variant as the application role in co_a's context; the error text on refusal.
async fn save_variant(
    db: &TestDb,
    name: &str,
    subject: &str,
    body: &str,
    weight: &str,
) -> Result<(), String> {
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    tx.execute("SELECT set_company_context('co_a')", &[])
        .await
        .unwrap();
    let sql = format!(
        "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template, weight)
         VALUES ('co_a', 'webhook', $1, $2, $3, {weight})"
    );
    match tx.execute(sql.as_str(), &[&name, &subject, &body]).await {
        Ok(_) => {
            tx.commit().await.unwrap();
            Ok(())
        }
        Err(error) => Err(error
            .as_db_error()
            .and_then(|e| e.constraint().map(str::to_owned))
            .unwrap_or_else(|| error.to_string())),
    }
}

#[tokio::test]
async fn unknown_placeholders_and_non_positive_weights_are_refused_when_a_variant_is_saved() {
    let db = setup().await;
    assert_eq!(
        save_variant(
            &db,
            "plain",
            "Your payment failed",
            "Pay {{ amount }} {{currency}} at {{recovery_link}}, {{member_name}}",
            "1"
        )
        .await,
        Ok(())
    );
    for (name, subject, body) in [
        ("typo", "Hi {{member_nmae}}", "x"),
        ("spaced", "x", "Hi {{ member name }}"),
        ("open", "x", "Pay {{amount"),
        ("close", "x", "Pay amount}}"),
        ("nested", "x", "{{ {{amount}} }}"),
    ] {
        let refused = save_variant(&db, name, subject, body, "1").await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|c| c.contains("template_check")),
            "{name}: {refused:?}"
        );
    }
    for weight in ["0", "-1"] {
        let refused = save_variant(&db, &format!("w{weight}"), "s", "b", weight).await;
        assert!(
            refused.as_ref().is_err_and(|c| c.contains("weight_check")),
            "{weight}: {refused:?}"
        );
    }
}

/// Variants A (4 sends over two cases, 2 clicks, 1 conversion of 4900), B (2 sends, nothing
/// else) and C (never sent), written as the owner.
async fn performance_fixture(db: &TestDb) {
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
             VALUES ('co_a', 'webhook', 'A', 's', 'b'), ('co_a', 'webhook', 'B', 's', 'b'),
                    ('co_a', 'webhook', 'C', 's', 'b');
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status)
             SELECT 'co_a', c, o, now(), 'sent' FROM (VALUES (1, 0), (1, 24), (2, 0), (2, 24), (3, 0), (3, 24)) AS r(c, o);
             INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id)
             SELECT 'co_a', CASE WHEN r.case_id < 3 THEN 1 ELSE 2 END, r.id, r.case_id FROM reminders r;
             INSERT INTO ab_test_conversions (company_id, variant_id, case_id, reminder_id, kind)
             VALUES ('co_a', 1, 1, 1, 'click'), ('co_a', 1, 2, 3, 'click');
             INSERT INTO ab_test_conversions (company_id, variant_id, case_id, kind, amount)
             VALUES ('co_a', 1, 1, 'conversion', 4900);",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn ab_test_performance_equals_a_hand_computed_fixture() {
    let db = setup().await;
    performance_fixture(&db).await;
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    tx.execute("SELECT set_company_context('co_a')", &[])
        .await
        .unwrap();
    let rows = tx
        .query(
            "SELECT name, sends, clicks, ctr::float8, conversions, conversion_rate::float8, revenue_recovered::int8
               FROM ab_test_performance ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let table: Vec<(String, i64, i64, f64, i64, f64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    assert_eq!(
        table,
        [
            ("A".to_owned(), 4, 2, 0.5, 1, 0.25, 4900),
            ("B".to_owned(), 2, 0, 0.0, 0, 0.0, 0),
            ("C".to_owned(), 0, 0, 0.0, 0, 0.0, 0),
        ]
    );
    // The view runs with the reader's rights: another tenant sees none of it.
    tx.execute("SELECT set_company_context('co_b')", &[])
        .await
        .unwrap();
    let seen: i64 = tx
        .query_one("SELECT count(*) FROM ab_test_performance", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
}

#[tokio::test]
async fn the_best_variant_wins_on_conversion_rate_only_with_enough_sends() {
    let db = setup().await;
    performance_fixture(&db).await;
    let mut app = db.app().await;
    let tx = app.transaction().await.unwrap();
    tx.execute("SELECT set_company_context('co_a')", &[])
        .await
        .unwrap();
    let best = async |min: i32| -> Option<i64> {
        tx.query_one("SELECT get_best_ab_variant('co_a', $1)", &[&min])
            .await
            .unwrap()
            .get(0)
    };
    assert_eq!(best(2).await, Some(1), "A converts 25%, B 0%");
    assert_eq!(best(5).await, None, "no variant has 5 sends yet");
    tx.execute(
        "UPDATE ab_test_variants SET active = false WHERE name = 'A'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        best(2).await,
        Some(2),
        "an inactive variant is never chosen"
    );
}

#[tokio::test]
async fn overlapping_claims_take_each_due_reminder_exactly_once_across_tenants() {
    let db = setup().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             VALUES ('co_b', 'stripe', 'sub_b', 'in_b', 100, 'usd', now());
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
             SELECT CASE WHEN c = 4 THEN 'co_b' ELSE 'co_a' END, c, o, now() - interval '1 minute' * o
               FROM generate_series(1, 4) c, generate_series(0, 49) o;
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
             VALUES ('co_a', 1, 1000, now() + interval '1 day');",
        )
        .await
        .unwrap();
    let claim = async || -> Vec<i64> {
        let app = db.scheduler().await;
        let mut claimed = Vec::new();
        loop {
            let rows = app
                .query("SELECT reminder_id FROM claim_due_reminders(now(), 7)", &[])
                .await
                .unwrap();
            if rows.is_empty() {
                return claimed;
            }
            claimed.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
        }
    };
    let (first, second) = tokio::join!(claim(), claim());
    let mut all: Vec<i64> = first.iter().chain(&second).copied().collect();
    let total = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "a reminder was claimed twice");
    assert_eq!(total, 200, "every due reminder of both tenants, once");
    let admin = db.admin().await;
    let pending: i64 = admin
        .query_one(
            "SELECT count(*) FROM reminders WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 1, "the reminder not yet due stays pending");
    // Outside the function the application role still sees no reminder without a tenant.
    let visible: i64 = db
        .app()
        .await
        .query_one("SELECT count(*) FROM reminders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 0);
}
