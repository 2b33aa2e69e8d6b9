//! A member's export and erasure against real Postgres and the emulator's DLQ: the member is
//! built by the real projections from Stripe fixture events, beside another member who must
//! stay whole.

use std::borrow::Cow;

use inlet_adapters::aws::SqsDeadLetters;
use inlet_core::crypto::{context, KeyRing};
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::ops::dead_letters;
use inlet_domain::privacy::{self, PrivacyError};
use inlet_domain::{process, Processed};
use inlet_postgres::Connection;
use inlet_testing::{database_holds, AwsFixture, TestDb, TEST_KEYS};
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::providers::Provider;
use serde_json::Value;

use crate::projection_fixtures::{envelope, fixture_path};

const COMPANY: &str = "co_privacy";

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

/// A fixture event rewritten for `who` (ids, email, name), in this test's company.
fn event(event_type: &str, who: &str) -> Envelope<'static> {
    let body = std::fs::read_to_string(fixture_path(Provider::Stripe, event_type))
        .unwrap()
        .replace("cus_fx1", &format!("cus_{who}"))
        .replace("sub_fx1", &format!("sub_{who}"))
        .replace("in_fx_failed", &format!("in_{who}_failed"))
        .replace("in_fx_paid", &format!("in_{who}_paid"))
        .replace("ada@example.com", &format!("{who}@example.com"))
        .replace("Ada Lovelace", &format!("{who} Person"))
        .replace("evt_fx_", &format!("evt_{who}_"));
    let mut envelope = envelope(Provider::Stripe, event_type, body.into_bytes());
    envelope.meta.company_id = Cow::Borrowed(COMPANY);
    envelope.meta.event_id = Cow::Owned(format!("evt_{who}_{event_type}"));
    envelope
}

const HISTORY: [&str; 4] = [
    "customer.created",
    "customer.subscription.created",
    "invoice.payment_failed",
    "invoice.paid",
];

async fn build(db: &TestDb) -> Connection {
    let admin = db.admin().await;
    admin
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Privacy Inc')",
            &[&COMPANY],
        )
        .await
        .unwrap();
    let mut app = Connection::from(db.app().await);
    let projections = inlet_domain::projections::all();
    for who in ["grace", "alan"] {
        for kind in HISTORY {
            let done = process(&mut app, &event(kind, who), &projections, &keys()).await;
            assert_eq!(done, Ok(Processed::Applied), "{who} {kind}");
        }
    }
    // A reminder sent for grace's case under an A/B variant, clicked and converted.
    admin
        .batch_execute(&format!(
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
                  VALUES ('{COMPANY}', 'email', 'short', 's', 'b');
             UPDATE reminders SET status = 'sent' WHERE id = (
                  SELECT min(r.id) FROM reminders r JOIN recovery_cases c ON c.id = r.case_id
                   WHERE c.company_id = '{COMPANY}' AND c.opened_by_payment = 'in_grace_failed');
             INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id)
                  SELECT '{COMPANY}', v.id, r.id, r.case_id FROM ab_test_variants v, reminders r
                   WHERE v.company_id = '{COMPANY}' AND r.company_id = '{COMPANY}' AND r.status = 'sent';
             INSERT INTO ab_test_conversions (company_id, variant_id, case_id, reminder_id, kind)
                  SELECT '{COMPANY}', u.variant_id, u.case_id, u.reminder_id, 'click' FROM ab_test_usage u;
             INSERT INTO ab_test_conversions (company_id, variant_id, case_id, kind, amount)
                  SELECT '{COMPANY}', u.variant_id, u.case_id, 'conversion', 4900 FROM ab_test_usage u
             ON CONFLICT DO NOTHING;"
        ))
        .await
        .unwrap();
    app
}

/// The tenant's figures that must survive an erasure.
async fn figures(db: &TestDb) -> Vec<String> {
    let admin = db.admin().await;
    let mut out = Vec::new();
    for sql in [
        "SELECT string_agg(concat_ws(',', name, sends, clicks, conversions, revenue_recovered), ';') FROM ab_test_performance",
        "SELECT concat_ws(',', count(*), sum(amount_at_risk), count(*) FILTER (WHERE status = 'recovered')) FROM recovery_cases",
        "SELECT concat_ws(',', count(*), sum(amount)) FROM payments WHERE status = 'paid'",
        "SELECT count(*)::text FROM webhook_events",
    ] {
        out.push(admin.query_one(sql, &[]).await.unwrap().get(0));
    }
    out
}

/// Every sealed value the database holds, opened: what a search of bytea columns must see.
async fn opened_sealed_values(db: &TestDb) -> String {
    let admin = db.admin().await;
    let keys = keys();
    let mut text = String::new();
    for row in admin
        .query(
            "SELECT company_id, source_id, provider_event_id, payload_enc, payload_key_id
               FROM webhook_events WHERE payload_enc IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
    {
        let (company, source, event): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let plain = keys
            .open_bytes(
                &row.get::<_, String>(4),
                &row.get::<_, Vec<u8>>(3),
                &context::payload(&company, &source, &event),
            )
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&plain));
    }
    for row in admin
        .query(
            "SELECT company_id, provider, external_id, email_enc, email_key_id, name_enc, name_key_id FROM members",
            &[],
        )
        .await
        .unwrap()
    {
        let (company, provider, id): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        if let (Some(enc), Some(kid)) = (row.get::<_, Option<Vec<u8>>>(3), row.get::<_, Option<String>>(4)) {
            let plain = keys.open_bytes(&kid, &enc, &context::member_email(&company, &provider, &id)).unwrap();
            text.push_str(&String::from_utf8_lossy(&plain));
        }
        if let (Some(enc), Some(kid)) = (row.get::<_, Option<Vec<u8>>>(5), row.get::<_, Option<String>>(6)) {
            let plain = keys.open_bytes(&kid, &enc, &context::member_name(&company, &provider, &id)).unwrap();
            text.push_str(&String::from_utf8_lossy(&plain));
        }
    }
    text
}

#[tokio::test]
async fn an_export_holds_everything_about_the_member_decrypted_and_nothing_of_another() {
    let db = TestDb::create().await;
    let mut app = build(&db).await;
    let company = CompanyId::parse(COMPANY).unwrap();
    let actor = Actor::Key("0123456789abcdef".into());
    let mut out = Vec::new();
    let counts = privacy::export(&mut app, &keys(), &actor, &company, "cus_grace", &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for kind in [
        "member",
        "membership",
        "payment",
        "recovery_case",
        "reminder",
        "click_or_conversion",
        "event",
    ] {
        assert!(kinds.contains(&kind), "no {kind} line in {kinds:?}");
    }
    assert_eq!(lines[0]["email"], "grace@example.com");
    assert_eq!(lines[0]["name"], "grace Person");
    assert_eq!(
        counts["event"], 4,
        "the member's four events, with their payloads: {counts:?}"
    );
    assert!(text.contains("\"payload\":{"), "payloads decrypted");
    assert!(
        !text.contains("alan"),
        "another member's data in the export"
    );
    // Recorded and audited, the member named by a hash only.
    let admin = db.admin().await;
    let row = admin
        .query_one(
            "SELECT kind, status, subject_hash, requested_by FROM privacy_requests",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "export");
    assert_eq!(row.get::<_, String>(1), "completed");
    assert_eq!(
        row.get::<_, String>(2),
        privacy::subject_hash(&company, "cus_grace")
    );
    assert_eq!(row.get::<_, String>(3), "key:0123456789abcdef");
    let audited: i64 = admin
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'privacy.export'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    // A member the company does not hold: not found, and recorded as such.
    let missing = privacy::export(
        &mut app,
        &keys(),
        &actor,
        &company,
        "cus_nobody",
        &mut Vec::new(),
    )
    .await;
    assert!(matches!(missing, Err(PrivacyError::NotFound(_))));
}

#[tokio::test]
async fn after_an_erasure_nothing_names_the_member_and_the_tenants_figures_are_unchanged() {
    let db = TestDb::create().await;
    let mut app = build(&db).await;
    let company = CompanyId::parse(COMPANY).unwrap();
    let grace = [
        "grace@example.com",
        "grace Person",
        "cus_grace",
        "sub_grace",
        "in_grace_failed",
        "in_grace_paid",
    ];
    let alan = ["alan@example.com", "cus_alan", "sub_alan", "in_alan_paid"];
    assert_eq!(
        database_holds(&db.admin_url, &grace).len(),
        4,
        "ids in the clear before"
    );
    assert!(opened_sealed_values(&db)
        .await
        .contains("grace@example.com"));

    // Dead letters: one naming grace (in its envelope's payload), one of alan's.
    let fx = AwsFixture::create().await;
    for who in ["grace", "alan"] {
        let letter = String::from_utf8(event("invoice.payment_failed", who).to_json()).unwrap();
        fx.sqs
            .send_message()
            .queue_url(&fx.events_dlq_url)
            .message_body(letter)
            .send()
            .await
            .unwrap();
    }

    let before = figures(&db).await;
    let actor = Actor::Operator("dpo".into());
    let erased = privacy::erase(&mut app, &keys(), &actor, &company, "cus_grace")
        .await
        .unwrap();
    assert!(erased.counts["events"] >= 4, "{:?}", erased.counts);
    let port = SqsDeadLetters::new(fx.sqs.clone());
    let deleted = dead_letters::delete_matching(
        &port,
        &fx.events_dlq_url,
        |m| dead_letters::mentions(m, &erased.needles),
        false,
    )
    .await
    .unwrap();
    assert_eq!(deleted.len(), 1);

    // Every text, jsonb and bytea column (pg_dump), every sealed value opened, the DLQ.
    assert!(
        database_holds(&db.admin_url, &grace).is_empty(),
        "{:?}",
        database_holds(&db.admin_url, &grace)
    );
    let sealed = opened_sealed_values(&db).await;
    for needle in grace {
        assert!(!sealed.contains(needle), "{needle} in a sealed value");
    }
    let left = dead_letters::scan(&port, &fx.events_dlq_url).await.unwrap();
    dead_letters::release(&port, &fx.events_dlq_url, &left)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    for needle in grace {
        assert!(!left[0].message.body.contains(needle));
    }
    // Alan is whole; the tenant's figures did not move.
    assert_eq!(
        database_holds(&db.admin_url, &alan).len(),
        3,
        "alan's ids in the clear"
    );
    assert!(sealed.contains("alan@example.com"));
    assert_eq!(figures(&db).await, before);

    // The ledger rows stayed: a retry of grace's event is still a duplicate.
    let projections = inlet_domain::projections::all();
    let again = process(
        &mut app,
        &event("invoice.paid", "grace"),
        &projections,
        &keys(),
    )
    .await;
    assert_eq!(again, Ok(Processed::Duplicate));

    // Idempotent: again is `not_found`, recorded; both audited.
    let twice = privacy::erase(&mut app, &keys(), &actor, &company, "cus_grace")
        .await
        .unwrap();
    assert!(twice.counts.is_empty() && twice.needles.is_empty());
    let statuses: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT status FROM privacy_requests WHERE kind = 'erasure' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["completed", "not_found"]);
    let audit = db.admin().await;
    let details: Vec<String> = audit
        .query(
            "SELECT target || ' ' || details::text FROM audit_log WHERE action = 'privacy.erase'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(details.len(), 2);
    assert!(details.iter().all(|d| !d.contains("grace")), "{details:?}");
}
