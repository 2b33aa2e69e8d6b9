//! Stripe events through the ledger and the registered projections, on the real server as the
//! application role: members, memberships, payments, and payment recovery.

use std::borrow::Cow;
use std::collections::BTreeMap;

use inlet_core::crypto::KeyRing;
use inlet_domain::projections::all as projections;
use inlet_domain::{process, Processed};
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use serde_json::{json, Value};

pub(crate) const COMPANY: &str = "co_recovery";

pub(crate) async fn setup(settings: Value) -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name, settings) VALUES ($1, 'Recovery Co', $2)",
            &[&COMPANY, &settings],
        )
        .await
        .unwrap();
    db
}

/// A Stripe event as Stripe sends it, wrapped in an envelope as intake builds it.
pub(crate) fn stripe(
    event_id: &str,
    event_type: &str,
    at: &str,
    object: Value,
) -> Envelope<'static> {
    let created = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp();
    let body = json!({
        "id": event_id, "object": "event", "api_version": "2024-06-20", "created": created,
        "type": event_type, "livemode": false, "data": {"object": object}
    });
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: "src_stripe".into(),
            provider: Cow::Borrowed("stripe"),
            company_id: COMPANY.into(),
            event_id: event_id.into(),
            event_type: event_type.into(),
            object_type: object["object"].as_str().map(Cow::Borrowed),
            object_id: object["id"].as_str().map(Cow::Borrowed),
            occurred_at: Some(at.into()),
            received_at: at.into(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::Json,
            replay: false,
        },
        body: Cow::Owned(body.to_string().into_bytes()),
    }
    .into_owned()
}

pub(crate) fn subscription(status: &str) -> Value {
    json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
           "current_period_end": 1_711_929_600,
           "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_pro", "unit_amount": 4900}}]}})
}

pub(crate) fn invoice(id: &str, status: &str) -> Value {
    json!({"id": id, "object": "invoice", "customer": "cus_1", "subscription": "sub_1", "status": status,
           "amount_due": 4900, "amount_paid": if status == "paid" { 4900 } else { 0 }, "currency": "usd",
           "customer_email": "ada@example.com", "attempt_count": 1})
}

pub(crate) async fn run(db: &TestDb, events: &[Envelope<'static>]) -> Vec<Processed> {
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let keys = KeyRing::parse(TEST_KEYS, None).unwrap();
    let projections = projections();
    let mut outcomes = Vec::new();
    for event in events {
        outcomes.push(process(&mut app, event, &projections, &keys).await.unwrap());
    }
    outcomes
}

pub(crate) async fn rows(db: &TestDb, sql: &str) -> Vec<tokio_postgres::Row> {
    db.admin().await.query(sql, &[]).await.unwrap()
}

/// An active subscription whose invoice failed at 2024-03-01 11:00: an open case.
async fn subscribed_then_failed() -> TestDb {
    let db = setup(json!({})).await;
    run(
        &db,
        &[
            stripe(
                "evt_sub",
                "customer.subscription.created",
                "2024-03-01T10:00:00Z",
                subscription("active"),
            ),
            stripe(
                "evt_fail",
                "invoice.payment_failed",
                "2024-03-01T11:00:00Z",
                invoice("in_1", "open"),
            ),
        ],
    )
    .await;
    db
}

#[tokio::test]
async fn a_failed_payment_opens_a_case_with_reminders_and_the_next_payment_recovers_it() {
    let db = subscribed_then_failed().await;
    let case = &rows(
        &db,
        "SELECT status, amount_at_risk, currency, opened_by_payment FROM recovery_cases",
    )
    .await[0];
    assert_eq!(
        (
            case.get::<_, String>(0),
            case.get::<_, i64>(1),
            case.get::<_, String>(2)
        ),
        ("open".into(), 4900, "usd".into())
    );
    let due: Vec<(i32, String)> = rows(&db, "SELECT offset_hours, to_char(due_at AT TIME ZONE 'UTC', 'MM-DD HH24:MI') FROM reminders ORDER BY offset_hours")
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        due,
        [
            (0, "03-01 11:00".into()),
            (24, "03-02 11:00".into()),
            (72, "03-04 11:00".into()),
            (168, "03-08 11:00".into())
        ]
    );

    // A reminder went out, then the member pays.
    db.admin()
        .await
        .execute(
            "UPDATE reminders SET status = 'sent' WHERE offset_hours = 0",
            &[],
        )
        .await
        .unwrap();
    run(
        &db,
        &[stripe(
            "evt_paid",
            "invoice.paid",
            "2024-03-02T15:00:00Z",
            invoice("in_1", "paid"),
        )],
    )
    .await;
    let case = &rows(&db, "SELECT status, closed_by_payment FROM recovery_cases").await[0];
    assert_eq!(
        (case.get::<_, String>(0), case.get::<_, String>(1)),
        ("recovered".into(), "in_1".into())
    );
    let statuses: Vec<String> = rows(&db, "SELECT status FROM reminders ORDER BY offset_hours")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        statuses,
        ["sent", "cancelled", "cancelled", "cancelled"],
        "what was sent stays for attribution"
    );
    let payment = &rows(
        &db,
        "SELECT status, amount FROM payments WHERE external_id = 'in_1'",
    )
    .await[0];
    assert_eq!(
        (payment.get::<_, String>(0), payment.get::<_, i64>(1)),
        ("paid".into(), 4900)
    );
}

#[tokio::test]
async fn replays_and_further_failed_attempts_never_open_a_second_case() {
    let db = setup(json!({})).await;
    let failed = stripe(
        "evt_fail",
        "invoice.payment_failed",
        "2024-03-01T11:00:00Z",
        invoice("in_1", "open"),
    );
    let outcomes = run(
        &db,
        &[
            stripe(
                "evt_sub",
                "customer.subscription.updated",
                "2024-03-01T10:00:00Z",
                subscription("past_due"),
            ),
            failed.clone(),
            failed.clone(),
            stripe(
                "evt_fail_2",
                "invoice.payment_failed",
                "2024-03-02T11:00:00Z",
                invoice("in_1", "open"),
            ),
        ],
    )
    .await;
    assert_eq!(outcomes[2], Processed::Duplicate);
    assert_eq!(rows(&db, "SELECT id FROM recovery_cases").await.len(), 1);
    assert_eq!(rows(&db, "SELECT id FROM reminders").await.len(), 4);
}

#[tokio::test]
async fn cancelling_the_subscription_closes_the_case_as_lost() {
    let db = setup(json!({})).await;
    run(
        &db,
        &[
            stripe(
                "evt_sub",
                "customer.subscription.created",
                "2024-03-01T10:00:00Z",
                subscription("active"),
            ),
            stripe(
                "evt_fail",
                "invoice.payment_failed",
                "2024-03-01T11:00:00Z",
                invoice("in_1", "open"),
            ),
            stripe(
                "evt_del",
                "customer.subscription.deleted",
                "2024-03-09T00:00:00Z",
                subscription("canceled"),
            ),
        ],
    )
    .await;
    let case = &rows(&db, "SELECT status FROM recovery_cases").await[0];
    assert_eq!(case.get::<_, String>(0), "lost");
    assert_eq!(
        rows(&db, "SELECT id FROM reminders WHERE status = 'pending'")
            .await
            .len(),
        0
    );
}

#[tokio::test]
async fn a_failed_payment_on_a_cancelled_membership_opens_nothing() {
    let db = setup(json!({})).await;
    run(
        &db,
        &[
            stripe(
                "evt_sub",
                "customer.subscription.deleted",
                "2024-03-01T10:00:00Z",
                subscription("canceled"),
            ),
            stripe(
                "evt_fail",
                "invoice.payment_failed",
                "2024-03-01T11:00:00Z",
                invoice("in_1", "open"),
            ),
        ],
    )
    .await;
    assert!(rows(&db, "SELECT id FROM recovery_cases").await.is_empty());
    assert_eq!(
        rows(
            &db,
            "SELECT external_id FROM payments WHERE status = 'failed'"
        )
        .await
        .len(),
        1,
        "the payment itself is still recorded"
    );
}

#[tokio::test]
async fn company_settings_choose_the_reminder_offsets() {
    let db = setup(json!({"reminder_offsets_hours": [1, 48]})).await;
    run(
        &db,
        &[stripe(
            "evt_fail",
            "invoice.payment_failed",
            "2024-03-01T11:00:00Z",
            invoice("in_1", "open"),
        )],
    )
    .await;
    let offsets: Vec<i32> = rows(&db, "SELECT offset_hours FROM reminders ORDER BY 1")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(offsets, [1, 48]);
}

/// The statement that opens a case reads the offsets itself (it is planned before anything
/// runs): anything but a non-empty list of whole hours >= 0 that fit an int is the default.
#[tokio::test]
async fn settings_offsets_that_are_not_whole_hours_fall_back_to_the_default_due_times() {
    let cases = [
        (json!({"reminder_offsets_hours": [48, 1]}), vec![48, 1]),
        (json!({"reminder_offsets_hours": [0]}), vec![0]),
        (
            json!({"reminder_offsets_hours": [-1, 24]}),
            vec![0, 24, 72, 168],
        ),
        (
            json!({"reminder_offsets_hours": [1.5]}),
            vec![0, 24, 72, 168],
        ),
        (
            json!({"reminder_offsets_hours": ["24"]}),
            vec![0, 24, 72, 168],
        ),
        (
            json!({"reminder_offsets_hours": [3_000_000_000_u64]}),
            vec![0, 24, 72, 168],
        ),
        (json!({"reminder_offsets_hours": []}), vec![0, 24, 72, 168]),
        (
            json!({"reminder_offsets_hours": "0,24"}),
            vec![0, 24, 72, 168],
        ),
        (
            json!({"reminder_offsets_hours": {"first": 1}}),
            vec![0, 24, 72, 168],
        ),
        (
            json!({"reminder_offsets_hours": null}),
            vec![0, 24, 72, 168],
        ),
        (json!({}), vec![0, 24, 72, 168]),
    ];
    for (settings, expected) in cases {
        let db = setup(settings.clone()).await;
        run(
            &db,
            &[stripe(
                "evt_fail",
                "invoice.payment_failed",
                "2024-03-01T11:00:00Z",
                invoice("in_1", "open"),
            )],
        )
        .await;
        let due: Vec<(i32, String)> = rows(
            &db,
            "SELECT offset_hours, to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') FROM reminders ORDER BY id",
        )
        .await
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let failed_at = time::OffsetDateTime::parse(
            "2024-03-01T11:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let wanted: Vec<(i32, String)> = expected
            .iter()
            .map(|h| {
                let at = failed_at + time::Duration::hours(i64::from(*h));
                (
                    *h,
                    format!(
                        "{:04}-{:02}-{:02} {:02}",
                        at.year(),
                        u8::from(at.month()),
                        at.day(),
                        at.hour()
                    ),
                )
            })
            .collect();
        assert_eq!(due, wanted, "settings {settings}");
    }
}

#[tokio::test]
async fn customers_become_members_with_an_email_hash_and_no_email() {
    let db = setup(json!({})).await;
    let customer = json!({"id": "cus_1", "object": "customer", "email": "Ada@Example.com", "name": "Ada Lovelace"});
    run(
        &db,
        &[stripe(
            "evt_cus",
            "customer.created",
            "2024-03-01T10:00:00Z",
            customer,
        )],
    )
    .await;
    let member = &rows(
        &db,
        "SELECT email_hash, row_to_json(members)::text FROM members",
    )
    .await[0];
    assert_eq!(
        member.get::<_, String>(0),
        inlet_domain::projections::members::email_hash("ada@example.com")
    );
    let stored: String = member.get(1);
    assert!(
        !stored.to_lowercase().contains("ada@example.com") && !stored.contains("Lovelace"),
        "{stored}"
    );
}

#[tokio::test]
async fn events_for_one_subscription_out_of_order_end_in_the_in_order_state() {
    let in_order = setup(json!({})).await;
    let out_of_order = setup(json!({})).await;
    let created = stripe(
        "evt_1",
        "customer.subscription.created",
        "2024-03-01T10:00:00Z",
        subscription("active"),
    );
    let past_due = stripe(
        "evt_2",
        "customer.subscription.updated",
        "2024-03-02T10:00:00Z",
        subscription("past_due"),
    );
    let canceled = stripe(
        "evt_3",
        "customer.subscription.updated",
        "2024-03-03T10:00:00Z",
        subscription("canceled"),
    );
    run(
        &in_order,
        &[created.clone(), past_due.clone(), canceled.clone()],
    )
    .await;
    let outcomes = run(&out_of_order, &[canceled, created, past_due]).await;
    assert_eq!(
        outcomes,
        [Processed::Applied, Processed::Stale, Processed::Stale]
    );
    let state = |db: &TestDb| {
        let db = db.admin_url.clone();
        async move {
            let client = inlet_postgres::connect(&db).await.unwrap();
            let status: String = client
                .query_one("SELECT status FROM memberships", &[])
                .await
                .unwrap()
                .get(0);
            status
        }
    };
    assert_eq!(state(&in_order).await, "canceled");
    assert_eq!(state(&out_of_order).await, "canceled");
}

#[tokio::test]
async fn a_recovery_is_attributed_to_the_last_variant_sent_before_the_payment() {
    let db = subscribed_then_failed().await;
    // Variant A went out first, then B, both before the payment; C only after it.
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
             VALUES ('{COMPANY}', 'webhook', 'A', 's', 'b'), ('{COMPANY}', 'webhook', 'B', 's', 'b'),
                    ('{COMPANY}', 'webhook', 'C', 's', 'b');
             UPDATE reminders SET status = 'sent' WHERE offset_hours IN (0, 24, 72);
             INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id, sent_at)
             SELECT '{COMPANY}', v.id, r.id, r.case_id, r.due_at
               FROM reminders r JOIN ab_test_variants v
                 ON v.name = CASE r.offset_hours WHEN 0 THEN 'A' WHEN 24 THEN 'B' ELSE 'C' END
              WHERE r.offset_hours IN (0, 24, 72);"
        ))
        .await
        .unwrap();
    let paid = stripe(
        "evt_paid",
        "invoice.paid",
        "2024-03-02T15:00:00Z",
        invoice("in_1", "paid"),
    );
    run(&db, &[paid.clone(), paid]).await;
    let conversions: Vec<(String, i64)> = rows(
        &db,
        "SELECT v.name, c.amount FROM ab_test_conversions c JOIN ab_test_variants v ON v.id = c.variant_id
          WHERE c.kind = 'conversion'",
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(
        conversions,
        [("B".to_owned(), 4900)],
        "B was the last sent before the payment at 03-02 15:00 (C went out at 03-04)"
    );
}
