//! Whop and Clerk events through the ledger and projections, on the real server.

use std::borrow::Cow;
use std::collections::BTreeMap;

use inlet_core::crypto::KeyRing;
use inlet_domain::process;
use inlet_domain::projections::all as projections;
use inlet_domain::projections::members::email_hash;
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use serde_json::{json, Value};

const COMPANY: &str = "biz_demo";

async fn setup() -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Biz')",
            &[&COMPANY],
        )
        .await
        .unwrap();
    db
}

/// A Standard-Webhooks-style payload (`type`, `timestamp`, `data`) in an envelope.
fn event(
    provider: &'static str,
    event_id: &str,
    event_type: &str,
    at: &str,
    data: Value,
) -> Envelope<'static> {
    let body = json!({"id": event_id, "api_version": "v1", "type": event_type, "timestamp": at, "company_id": COMPANY, "data": data});
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: format!("src_{provider}").into(),
            provider: Cow::Borrowed(provider),
            company_id: COMPANY.into(),
            event_id: event_id.into(),
            event_type: event_type.into(),
            object_type: event_type.split_once('.').map(|(o, _)| Cow::Borrowed(o)),
            object_id: data_id(&body).map(Cow::Owned),
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

fn data_id(body: &Value) -> Option<String> {
    body.pointer("/data/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn run(db: &TestDb, events: &[Envelope<'static>]) {
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let keys = KeyRing::parse(TEST_KEYS, None).unwrap();
    for e in events {
        process(&mut app, e, &projections(), &keys).await.unwrap();
    }
}

async fn one(db: &TestDb, sql: &str) -> tokio_postgres::Row {
    db.admin().await.query_one(sql, &[]).await.unwrap()
}

fn membership(status: &str) -> Value {
    json!({"id": "mem_1", "status": status, "user": {"id": "user_1", "email": "ada@example.com"},
           "plan": {"id": "plan_1"}, "renewal_period_end": "2025-07-01T00:00:00Z", "currency": "usd"})
}

fn payment(id: &str, status: &str) -> Value {
    json!({"id": id, "status": status, "total": 49.0, "subtotal": 49.0, "currency": "usd",
           "membership": {"id": "mem_1", "status": "active"}, "user": {"id": "user_1", "email": "ada@example.com"},
           "failure_message": if status == "failed" { Value::from("card_declined") } else { Value::Null }})
}

#[tokio::test]
async fn a_failed_whop_payment_opens_a_case_and_the_next_success_recovers_it() {
    let db = setup().await;
    run(
        &db,
        &[
            event(
                "whop",
                "msg_1",
                "membership.activated",
                "2025-06-01T10:00:00Z",
                membership("active"),
            ),
            event(
                "whop",
                "msg_2",
                "payment.failed",
                "2025-06-01T11:00:00Z",
                payment("pay_1", "failed"),
            ),
        ],
    )
    .await;
    let case = one(&db, "SELECT status, amount_at_risk FROM recovery_cases").await;
    assert_eq!(
        (case.get::<_, String>(0), case.get::<_, i64>(1)),
        ("open".into(), 4900)
    );
    let failure: String = one(&db, "SELECT failure_reason FROM payments").await.get(0);
    assert_eq!(failure, "card_declined");
    run(
        &db,
        &[event(
            "whop",
            "msg_3",
            "payment.succeeded",
            "2025-06-02T11:00:00Z",
            payment("pay_2", "paid"),
        )],
    )
    .await;
    let case = one(&db, "SELECT status, closed_by_payment FROM recovery_cases").await;
    assert_eq!(
        (case.get::<_, String>(0), case.get::<_, String>(1)),
        ("recovered".into(), "pay_2".into())
    );
}

#[tokio::test]
async fn a_deactivated_whop_membership_closes_its_case_as_lost() {
    let db = setup().await;
    run(
        &db,
        &[
            event(
                "whop",
                "msg_1",
                "membership.activated",
                "2025-06-01T10:00:00Z",
                membership("active"),
            ),
            event(
                "whop",
                "msg_2",
                "payment.failed",
                "2025-06-01T11:00:00Z",
                payment("pay_1", "failed"),
            ),
            event(
                "whop",
                "msg_3",
                "membership.deactivated",
                "2025-06-08T10:00:00Z",
                membership("expired"),
            ),
        ],
    )
    .await;
    let status: String = one(&db, "SELECT status FROM recovery_cases").await.get(0);
    assert_eq!(status, "lost");
    let membership: String = one(&db, "SELECT status FROM memberships").await.get(0);
    assert_eq!(membership, "expired");
}

fn clerk_user(email: &str) -> Value {
    json!({"id": "user_2abc", "object": "user", "first_name": "Ada", "primary_email_address_id": "idn_1",
           "email_addresses": [{"id": "idn_1", "object": "email_address", "email_address": email}]})
}

#[tokio::test]
async fn clerk_users_become_members_with_a_sealed_email_and_deletion_forgets_it() {
    let db = setup().await;
    run(
        &db,
        &[event(
            "clerk",
            "msg_c1",
            "user.created",
            "2025-06-01T10:00:00Z",
            clerk_user("ada@example.com"),
        )],
    )
    .await;
    let hash: String = one(
        &db,
        "SELECT email_hash FROM members WHERE provider = 'clerk'",
    )
    .await
    .get(0);
    assert_eq!(hash, email_hash("ada@example.com"));
    let sealed = one(
        &db,
        "SELECT email_enc, email_key_id FROM members WHERE provider = 'clerk'",
    )
    .await;
    let (bytes, key_id): (Vec<u8>, String) = (sealed.get(0), sealed.get(1));
    assert!(
        !String::from_utf8_lossy(&bytes).contains("ada@"),
        "sealed, not stored in the clear"
    );
    let context = inlet_core::crypto::context::member_email(COMPANY, "clerk", "user_2abc");
    let opened = KeyRing::parse(TEST_KEYS, None)
        .unwrap()
        .open_bytes(&key_id, &bytes, &context)
        .unwrap();
    assert_eq!(opened, b"ada@example.com");
    run(
        &db,
        &[event(
            "clerk",
            "msg_c2",
            "user.deleted",
            "2025-06-02T10:00:00Z",
            json!({"id": "user_2abc", "object": "user", "deleted": true}),
        )],
    )
    .await;
    let row = one(
        &db,
        "SELECT status, email_hash, email_enc FROM members WHERE provider = 'clerk'",
    )
    .await;
    assert_eq!(row.get::<_, String>(0), "deleted");
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert_eq!(row.get::<_, Option<Vec<u8>>>(2), None);
}

#[tokio::test]
async fn a_clerk_user_created_racing_the_apps_own_upsert_yields_one_member_and_no_error() {
    let db = setup().await;
    for round in 0..10 {
        let id = format!("user_race_{round}");
        let mut data = clerk_user("race@example.com");
        data["id"] = Value::from(id.clone());
        let created = event(
            "clerk",
            &format!("msg_r{round}"),
            "user.created",
            "2025-06-01T10:00:00Z",
            data,
        );
        let (mut consumer, app) = (
            inlet_postgres::Connection::from(db.app().await),
            db.app().await,
        );
        let keys = KeyRing::parse(TEST_KEYS, None).unwrap();
        let projections = projections();
        let app_upsert = async {
            // What the application does when the user signs up through its own API.
            let tx_sql = format!(
                "BEGIN; SELECT set_company_context('{COMPANY}');
                 INSERT INTO members (company_id, provider, external_id) VALUES ('{COMPANY}', 'clerk', '{id}')
                 ON CONFLICT (company_id, provider, external_id) DO NOTHING; COMMIT;"
            );
            app.batch_execute(&tx_sql).await
        };
        let (processed, upserted) = tokio::join!(
            process(&mut consumer, &created, &projections, &keys),
            app_upsert
        );
        processed.unwrap();
        upserted.unwrap();
        let count: i64 = db
            .admin()
            .await
            .query_one(
                "SELECT count(*) FROM members WHERE external_id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 1);
    }
}
