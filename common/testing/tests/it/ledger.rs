//! The ledger transaction against the real server, as the application role.

use std::borrow::Cow;
use std::collections::BTreeMap;

use inlet_core::crypto::KeyRing;
use inlet_core::{DeadLetterCode, Failure};
use inlet_domain::{process, Event, Processed, Projections};
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};

const COMPANY: &str = "co_ledger";

/// Records each application, so "applied once" can be counted.
fn log_projection<'e>(
    plan: &mut inlet_postgres::Plan<'e>,
    event: &'e Event<'e>,
) -> Result<(), Failure> {
    let meta = &event.envelope.meta;
    plan.push(
        "INSERT INTO projection_log (company_id, event_id) VALUES ($1, $2)",
        inlet_postgres::params![meta.company_id.as_ref(), meta.event_id.as_ref()],
    );
    Ok(())
}

fn refusing_projection<'e>(
    _: &mut inlet_postgres::Plan<'e>,
    _: &'e Event<'e>,
) -> Result<(), Failure> {
    Err(Failure::permanent(
        DeadLetterCode::ProjectionRejected,
        "invoice has no customer",
    ))
}

fn projections() -> Projections {
    Projections::default()
        .register(
            inlet_webhooks::providers::Provider::Stripe,
            "customer.updated",
            log_projection,
        )
        .register(
            inlet_webhooks::providers::Provider::Stripe,
            "invoice.voided",
            refusing_projection,
        )
}

async fn setup() -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO companies (company_id, name) VALUES ('{COMPANY}', 'Ledger Co');
             CREATE TABLE projection_log (company_id text NOT NULL REFERENCES companies, event_id text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
             SELECT enable_tenancy('projection_log');"
        ))
        .await
        .unwrap();
    db
}

fn envelope(
    event_id: &str,
    event_type: &str,
    occurred_at: &str,
    company: &str,
) -> Envelope<'static> {
    let body = format!(
        r#"{{"id":"{event_id}","type":"{event_type}","data":{{"object":{{"id":"cus_1","object":"customer","email":"ada@example.com"}}}}}}"#
    );
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: "src_ledger".into(),
            provider: Cow::Borrowed("stripe"),
            company_id: company.into(),
            event_id: event_id.into(),
            event_type: event_type.into(),
            object_type: Some("customer".into()),
            object_id: Some("cus_1".into()),
            occurred_at: Some(occurred_at.into()),
            received_at: "2024-01-01T00:00:00Z".into(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::Json,
            replay: false,
        },
        body: Cow::Owned(body.into_bytes()),
    }
    .into_owned()
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

#[tokio::test]
async fn the_same_envelope_three_times_is_one_ledger_row_applied_once() {
    let db = setup().await;
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let e = envelope("evt_1", "customer.updated", "2024-01-01T00:00:10Z", COMPANY);
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(
            process(&mut app, &e, &projections(), &keys())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes,
        [
            Processed::Applied,
            Processed::Duplicate,
            Processed::Duplicate
        ]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM projection_log").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed' AND attempts = 1"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_same_envelope_from_two_consumers_at_once_is_applied_once() {
    let db = setup().await;
    let e = envelope(
        "evt_race",
        "customer.updated",
        "2024-01-01T00:00:10Z",
        COMPANY,
    );
    let (projections, keys) = (projections(), keys());
    for _ in 0..10 {
        let (mut one, mut two) = (
            inlet_postgres::Connection::from(db.app().await),
            inlet_postgres::Connection::from(db.app().await),
        );
        let (a, b) = tokio::join!(
            process(&mut one, &e, &projections, &keys),
            process(&mut two, &e, &projections, &keys)
        );
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|o| o.status());
        assert!(outcomes.contains(&Processed::Duplicate), "{outcomes:?}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM projection_log").await, 1);
}

#[tokio::test]
async fn an_older_event_for_an_object_arriving_late_is_stale_and_changes_nothing() {
    let db = setup().await;
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let newer = envelope(
        "evt_new",
        "customer.updated",
        "2024-01-01T00:00:20Z",
        COMPANY,
    );
    let older = envelope(
        "evt_old",
        "customer.updated",
        "2024-01-01T00:00:10Z",
        COMPANY,
    );
    assert_eq!(
        process(&mut app, &newer, &projections(), &keys())
            .await
            .unwrap(),
        Processed::Applied
    );
    assert_eq!(
        process(&mut app, &older, &projections(), &keys())
            .await
            .unwrap(),
        Processed::Stale
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM projection_log").await,
        1,
        "the stale event was not projected"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events WHERE provider_event_id = 'evt_old' AND status = 'skipped_stale'").await, 1);
    let last: String = db
        .admin()
        .await
        .query_one("SELECT last_event_id FROM object_versions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "evt_new");
}

#[tokio::test]
async fn an_unknown_tenant_is_permanent_and_writes_nothing() {
    let db = setup().await;
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let e = envelope(
        "evt_x",
        "customer.updated",
        "2024-01-01T00:00:10Z",
        "co_nobody",
    );
    let failure = process(&mut app, &e, &projections(), &keys())
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        Failure::permanent(DeadLetterCode::UnknownTenant, "unknown tenant co_nobody")
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 0);
}

#[tokio::test]
async fn an_event_id_another_tenant_already_recorded_is_permanent_and_writes_nothing() {
    let db = setup().await;
    db.admin()
        .await
        .batch_execute("INSERT INTO companies (company_id, name) VALUES ('co_other', 'Other')")
        .await
        .unwrap();
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let first = envelope(
        "evt_shared",
        "customer.updated",
        "2024-01-01T00:00:10Z",
        COMPANY,
    );
    process(&mut app, &first, &projections(), &keys())
        .await
        .unwrap();
    let mut forged = envelope(
        "evt_shared",
        "customer.updated",
        "2024-01-01T00:00:20Z",
        "co_other",
    );
    forged.meta.object_id = Some("cus_other".into());
    let failure = process(&mut app, &forged, &projections(), &keys())
        .await
        .unwrap_err();
    assert_eq!(
        failure,
        Failure::permanent(
            DeadLetterCode::TenantConflict,
            "this event id is recorded for another tenant"
        )
    );
    assert_eq!(count(&db, "SELECT count(*) FROM webhook_events").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM object_versions WHERE company_id = 'co_other'"
        )
        .await,
        0,
        "the version check rolled back with the event"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM projection_log").await, 1);
}

#[tokio::test]
async fn a_projection_failure_rolls_back_the_whole_event() {
    let db = setup().await;
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let e = envelope(
        "evt_void",
        "invoice.voided",
        "2024-01-01T00:00:10Z",
        COMPANY,
    );
    let failure = process(&mut app, &e, &projections(), &keys())
        .await
        .unwrap_err();
    assert!(matches!(failure, Failure::Permanent(_)));
    assert_eq!(
        count(&db, "SELECT count(*) FROM webhook_events").await,
        0,
        "no ledger row survives"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM object_versions").await,
        0,
        "no version moved"
    );
}

#[tokio::test]
async fn unregistered_types_are_recorded_as_ignored_with_the_payload_sealed_and_minimised() {
    let db = setup().await;
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let e = envelope(
        "evt_ign",
        "customer.tax_id.created",
        "2024-01-01T00:00:10Z",
        COMPANY,
    );
    assert_eq!(
        process(&mut app, &e, &projections(), &keys())
            .await
            .unwrap(),
        Processed::Ignored
    );
    let row = db
        .admin()
        .await
        .query_one(
            "SELECT status, payload_min::text, payload_enc, payload_key_id FROM webhook_events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ignored");
    let min: String = row.get(1);
    assert!(
        min.contains("cus_1") && !min.contains("ada@example.com"),
        "{min}"
    );
    let sealed: Vec<u8> = row.get(2);
    assert!(!String::from_utf8_lossy(&sealed).contains("ada@example.com"));
    let opened = keys()
        .open_bytes(
            &row.get::<_, String>(3),
            &sealed,
            format!("{COMPANY}/src_ledger/evt_ign").as_bytes(),
        )
        .unwrap();
    assert_eq!(opened, e.body.as_ref());
}
