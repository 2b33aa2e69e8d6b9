//! A batch in one transaction ends exactly as its envelopes one by one: same outcomes, same
//! rows, with every case the per-envelope path handles (new, applied, duplicate within the
//! batch, stale, ignored, several tenants, an object's events in order within the batch).

use std::borrow::Cow;
use std::collections::BTreeMap;

use inlet_core::crypto::KeyRing;
use inlet_domain::ledger::{process_batch, BatchFallback};
use inlet_domain::{process, projections, Processed};
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use serde_json::{json, Value};

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

/// A Stripe event for `company` about `object` (an id and its `object` kind).
fn stripe(
    company: &str,
    event_id: &str,
    event_type: &str,
    object: Value,
    at: &str,
) -> Envelope<'static> {
    let body =
        json!({"id": event_id, "object": "event", "type": event_type, "data": {"object": object}});
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: Cow::Owned(format!("src_{company}")),
            provider: Cow::Borrowed("stripe"),
            company_id: Cow::Owned(company.to_owned()),
            event_id: Cow::Owned(event_id.to_owned()),
            event_type: Cow::Owned(event_type.to_owned()),
            object_type: object["object"].as_str().map(|t| Cow::Owned(t.to_owned())),
            object_id: object["id"].as_str().map(|t| Cow::Owned(t.to_owned())),
            occurred_at: Some(at.to_owned()),
            received_at: at.to_owned(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::Json,
            replay: false,
        },
        body: Cow::Owned(body.to_string().into_bytes()),
    }
}

/// Ten envelopes that exercise what a batch can hold.
fn mixed_batch() -> Vec<Envelope<'static>> {
    let customer =
        json!({"id": "cus_1", "object": "customer", "email": "ada@example.com", "name": "Ada"});
    let subscription = |status: &str| json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status, "current_period_end": 1_711_929_600, "items": {"data": [{"price": {"id": "price_pro"}}]}});
    let failed = json!({"id": "in_1", "object": "invoice", "customer": "cus_1", "subscription": "sub_1", "amount_due": 4900, "amount_paid": 0, "currency": "usd"});
    let paid = json!({"id": "in_2", "object": "invoice", "customer": "cus_1", "subscription": "sub_1", "amount_due": 4900, "amount_paid": 4900, "currency": "usd"});
    let other_failed = json!({"id": "in_9", "object": "invoice", "customer": "cus_9", "subscription": "sub_9", "amount_due": 1200, "amount_paid": 0, "currency": "eur"});
    vec![
        stripe(
            "co_a",
            "evt_1",
            "customer.created",
            customer.clone(),
            "2026-11-01T10:00:00Z",
        ),
        stripe(
            "co_a",
            "evt_2",
            "customer.subscription.updated",
            subscription("past_due"),
            "2026-11-01T10:01:00Z",
        ),
        stripe(
            "co_b",
            "evt_9",
            "invoice.payment_failed",
            other_failed,
            "2026-11-01T10:01:30Z",
        ),
        stripe(
            "co_a",
            "evt_3",
            "invoice.payment_failed",
            failed,
            "2026-11-01T10:02:00Z",
        ),
        // Older than evt_2 for the same subscription: stale.
        stripe(
            "co_a",
            "evt_0",
            "customer.subscription.updated",
            subscription("active"),
            "2026-11-01T09:00:00Z",
        ),
        // The same event again within the batch: a duplicate.
        stripe(
            "co_a",
            "evt_1",
            "customer.created",
            customer,
            "2026-11-01T10:00:00Z",
        ),
        stripe(
            "co_a",
            "evt_4",
            "invoice.paid",
            paid,
            "2026-11-01T10:05:00Z",
        ),
        // No projection for it: recorded, ignored.
        stripe(
            "co_b",
            "evt_10",
            "charge.refund.updated",
            json!({"id": "re_1", "object": "refund"}),
            "2026-11-01T10:06:00Z",
        ),
        stripe(
            "co_b",
            "evt_11",
            "customer.created",
            json!({"id": "cus_9", "object": "customer", "email": "bo@example.com"}),
            "2026-11-01T10:07:00Z",
        ),
        stripe(
            "co_a",
            "evt_5",
            "customer.updated",
            json!({"id": "cus_1", "object": "customer", "email": "ada@new.example.com"}),
            "2026-11-01T10:08:00Z",
        ),
    ]
}

async fn two_companies() -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B')",
        )
        .await
        .unwrap();
    db
}

/// Every row the events touched, without what differs by construction (sequence ids, times of
/// writing, sealed bytes with their random nonces).
async fn rows(db: &TestDb) -> BTreeMap<&'static str, Vec<String>> {
    let admin = db.admin().await;
    let mut all = BTreeMap::new();
    for table in [
        "webhook_events",
        "object_versions",
        "members",
        "memberships",
        "payments",
        "recovery_cases",
        "reminders",
    ] {
        let rows = admin
            .query(
                &format!(
                    "SELECT (to_jsonb(t) - 'id' - 'created_at' - 'updated_at' - 'processed_at'
                             - 'payload_enc' - 'email_enc' - 'name_enc')::text AS row
                       FROM {table} t ORDER BY 1"
                ),
                &[],
            )
            .await
            .unwrap();
        all.insert(table, rows.iter().map(|r| r.get::<_, String>(0)).collect());
    }
    all
}

#[tokio::test]
async fn a_batch_in_one_transaction_ends_exactly_as_its_envelopes_one_by_one() {
    let envelopes = mixed_batch();
    let projections = projections::all();

    let whole = two_companies().await;
    let mut connection = inlet_postgres::Connection::from(whole.app().await);
    let (tx, outcomes) = process_batch(&mut connection, &envelopes, &projections, &keys())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let one_by_one = two_companies().await;
    let mut connection = inlet_postgres::Connection::from(one_by_one.app().await);
    let mut expected = Vec::new();
    for envelope in &envelopes {
        expected.push(
            process(&mut connection, envelope, &projections, &keys())
                .await
                .unwrap(),
        );
    }

    assert_eq!(outcomes, expected);
    use Processed::*;
    assert_eq!(
        outcomes,
        [
            Applied, Applied, Applied, Applied, Stale, Duplicate, Applied, Ignored, Applied,
            Applied
        ]
    );
    let (whole_rows, expected_rows) = (rows(&whole).await, rows(&one_by_one).await);
    assert_eq!(whole_rows, expected_rows);
    // The case opened and recovered within the batch, the other tenant's still open.
    assert_eq!(
        whole_rows["recovery_cases"]
            .iter()
            .filter(|r| r.contains("\"recovered\""))
            .count(),
        1
    );
    assert_eq!(
        whole_rows["recovery_cases"]
            .iter()
            .filter(|r| r.contains("\"open\"") && r.contains("co_b"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_batch_the_ledger_or_a_projection_refuses_commits_nothing_and_says_why() {
    let projections = projections::all();
    let db = two_companies().await;
    let mut connection = inlet_postgres::Connection::from(db.app().await);
    let count =
        async |sql: &str| -> i64 { db.admin().await.query_one(sql, &[]).await.unwrap().get(0) };

    // An unknown tenant among good events.
    let mut envelopes = mixed_batch();
    envelopes.push(stripe(
        "co_nobody",
        "evt_x",
        "customer.created",
        json!({"id": "cus_x", "object": "customer"}),
        "2026-11-01T11:00:00Z",
    ));
    let refused = process_batch(&mut connection, &envelopes, &projections, &keys()).await;
    assert!(
        matches!(&refused, Err(BatchFallback::Failed(f)) if f.to_string().contains("unknown tenant")),
        "{refused:?}"
    );
    drop(refused);
    assert_eq!(count("SELECT count(*) FROM webhook_events").await, 0);

    // A projection that refuses its payload (an invoice without an amount).
    let mut envelopes = mixed_batch();
    envelopes.push(stripe(
        "co_a",
        "evt_bad",
        "invoice.payment_failed",
        json!({"id": "in_bad", "object": "invoice", "subscription": "sub_1", "currency": "usd"}),
        "2026-11-01T11:00:00Z",
    ));
    let refused = process_batch(&mut connection, &envelopes, &projections, &keys()).await;
    assert!(
        matches!(refused, Err(BatchFallback::Failed(_))),
        "{refused:?}"
    );
    drop(refused);
    assert_eq!(count("SELECT count(*) FROM webhook_events").await, 0);
    assert_eq!(count("SELECT count(*) FROM members").await, 0);

    // A replay takes its own path.
    let mut envelopes = mixed_batch();
    envelopes[0].meta.replay = true;
    assert!(matches!(
        process_batch(&mut connection, &envelopes, &projections, &keys()).await,
        Err(BatchFallback::NotEligible)
    ));

    // The connection is still good for the next batch.
    let (tx, outcomes) = process_batch(&mut connection, &mixed_batch(), &projections, &keys())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outcomes.len(), 10);
    assert_eq!(count("SELECT count(*) FROM webhook_events").await, 9);
}
