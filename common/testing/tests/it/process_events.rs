//! The process-events handler end to end on batches: metrics, and transient failures (a locked
//! table, the database stopped and started) retried with growing delays until processed; whole
//! batches in one transaction, and batches that cannot be, record by record.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use inlet_core::crypto::KeyRing;
use inlet_core::StoreError;
use inlet_domain::ports::{DeadLetter, DeadLetters, Receipt, Visibility};
use inlet_domain::projections::all as projections;
use inlet_lambda::batch::{Backoff, BatchRunner};
use inlet_lambda::metrics::MetricsSink;
use inlet_lambda::process_events::Processor;
use inlet_postgres::{Database, DbSettings};
use inlet_testing::{ScratchPostgres, TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use serde_json::{json, Value};

const COMPANY: &str = "co_batches";

/// Records what the runner asked of the queue.
#[derive(Default)]
struct Recorder {
    dead: Mutex<Vec<(String, &'static str)>>,
    delays: Mutex<Vec<(String, u32)>>,
}

impl DeadLetters for Recorder {
    async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), StoreError> {
        let id = letter.message_id.to_owned();
        self.dead
            .lock()
            .unwrap()
            .push((id, letter.code.class().as_str()));
        Ok(())
    }
}

impl Visibility for Recorder {
    async fn delay(&self, receipt: &Receipt<'_>, seconds: u32) -> Result<(), StoreError> {
        let id = receipt.message_id.to_owned();
        self.delays.lock().unwrap().push((id, seconds));
        Ok(())
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl MetricsSink for Lines {
    fn emit(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_owned());
    }
}

const BACKOFF: Backoff = Backoff {
    base_secs: 2,
    max_secs: 600,
};

fn processor(url: &str, statement_timeout: Duration) -> (Processor<Recorder>, Arc<Lines>) {
    let lines = Arc::new(Lines::default());
    let processor = Processor {
        runner: BatchRunner {
            ports: Recorder::default(),
            backoff: BACKOFF,
        },
        database: Database::new(DbSettings {
            statement_timeout,
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_millis(200),
            ..DbSettings::new(url)
        }),
        projections: projections(),
        keys: KeyRing::parse(TEST_KEYS, None).unwrap(),
        metrics: lines.clone(),
    };
    (processor, lines)
}

fn clerk_user_created(event_id: &str, user_id: &str) -> Envelope<'static> {
    let body = json!({"type": "user.created", "timestamp": 1_704_067_200_000_u64, "object": "event",
        "data": {"id": user_id, "object": "user", "primary_email_address_id": "idn_1",
                 "email_addresses": [{"id": "idn_1", "email_address": format!("{user_id}@example.com")}]}});
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: "src_clerk".into(),
            provider: Cow::Borrowed("clerk"),
            company_id: COMPANY.into(),
            event_id: event_id.into(),
            event_type: "user.created".into(),
            object_type: Some("user".into()),
            object_id: Some(user_id.into()),
            occurred_at: Some("2024-01-01T00:00:00Z".into()),
            received_at: "2024-01-01T00:00:01Z".into(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::Json,
            replay: false,
        },
        body: Cow::Owned(body.to_string().into_bytes()),
    }
    .into_owned()
}

/// A record as Lambda's SQS event source delivers it, with intake's `provider` attribute.
fn record(id: &str, provider: &str, body: String, receive_count: u32, sent_ms: u64) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(body);
    message.attributes = HashMap::from([
        ("ApproximateReceiveCount".into(), receive_count.to_string()),
        ("SentTimestamp".into(), sent_ms.to_string()),
    ]);
    let mut attribute = SqsMessageAttribute::default();
    attribute.string_value = Some(provider.to_owned());
    attribute.data_type = Some("String".into());
    message.message_attributes = HashMap::from([("provider".into(), attribute)]);
    message
}

fn batch(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

fn failed(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

async fn seed_company(admin_url: &str) {
    let admin = inlet_postgres::connect(admin_url).await.unwrap();
    admin
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Batches')",
            &[&COMPANY],
        )
        .await
        .unwrap();
}

async fn count(admin_url: &str, sql: &str) -> i64 {
    let admin = inlet_postgres::connect(admin_url).await.unwrap();
    admin.query_one(sql, &[]).await.unwrap().get(0)
}

trait JsonString {
    fn to_json_string(&self) -> String;
}

impl JsonString for Envelope<'_> {
    fn to_json_string(&self) -> String {
        String::from_utf8(self.to_json()).unwrap()
    }
}

fn now_ms() -> u64 {
    inlet_lambda::metrics::now_ms()
}

#[tokio::test]
async fn each_batch_reports_its_outcomes_per_provider_as_emf_metrics() {
    let db = TestDb::create().await;
    seed_company(&db.admin_url).await;
    let (processor, lines) = processor(&db.app_url, Duration::from_secs(5));
    let user = clerk_user_created("evt_m1", "user_m1").to_json_string();
    let sent = now_ms() - 1_500;
    let event = batch(vec![
        record("a", "clerk", user.clone(), 1, sent),
        record("b", "clerk", user, 1, sent),
        record("c", "stripe", "{not an envelope".into(), 1, sent),
    ]);
    let response = processor.handle_batch(&event).await;
    assert!(failed(&response).is_empty());

    let documents: Vec<Value> = lines
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |provider: &str, outcome: &str| {
        documents
            .iter()
            .find(|d| d["provider"] == provider && d["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {provider}/{outcome} document in {documents:?}"))
    };
    let processed = find("clerk", "processed");
    assert_eq!(processed["events"], 1);
    assert_eq!(processed["function"], "process-events");
    let age = processed["queue_age"][0].as_u64().unwrap();
    assert!(
        (1_500..60_000).contains(&age),
        "queue age from SentTimestamp, got {age} ms"
    );
    assert_eq!(find("clerk", "duplicate")["events"], 1);
    assert_eq!(find("stripe", "permanent")["events"], 1);
    let whole = documents
        .iter()
        .find(|d| d.get("batch_size").is_some())
        .unwrap();
    assert_eq!(whole["batch_size"], 3);
    assert!(whole["batch_duration"].as_u64().is_some());
    for document in &documents {
        let text = document.to_string();
        assert!(
            !text.contains(COMPANY) && !text.contains("evt_m1"),
            "no tenant or event ids in metrics: {text}"
        );
    }
}

#[tokio::test]
async fn a_locked_table_is_retried_with_growing_delays_then_processed_once() {
    let db = TestDb::create().await;
    seed_company(&db.admin_url).await;
    let (processor, _) = processor(&db.app_url, Duration::from_millis(300));
    let body = clerk_user_created("evt_lock", "user_lock").to_json_string();

    // An operator's long migration holds the members table.
    let mut locker = inlet_postgres::connect(&db.admin_url).await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for receive_count in 1..=2 {
        let event = batch(vec![record("m", "clerk", body.clone(), receive_count, 0)]);
        let response = processor.handle_batch(&event).await;
        assert_eq!(failed(&response), ["m"], "receive {receive_count}");
    }
    let delays: Vec<u32> = processor
        .runner
        .ports
        .delays
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(delays.len(), 2);
    for (n, delay) in delays.iter().enumerate() {
        let ceiling = BACKOFF.ceiling_secs(n as u32 + 1);
        assert!(
            (1..=ceiling).contains(delay),
            "{delay} within 1..={ceiling}"
        );
    }
    assert!(BACKOFF.ceiling_secs(2) > BACKOFF.ceiling_secs(1));
    assert!(processor.runner.ports.dead.lock().unwrap().is_empty());
    lock.rollback().await.unwrap();

    // Nothing was half-written while it failed.
    assert_eq!(
        count(&db.admin_url, "SELECT count(*) FROM webhook_events").await,
        0
    );
    let event = batch(vec![record("m", "clerk", body, 3, 0)]);
    assert!(failed(&processor.handle_batch(&event).await).is_empty());
    assert_eq!(
        count(
            &db.admin_url,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&db.admin_url, "SELECT count(*) FROM members").await,
        1
    );
}

#[tokio::test]
async fn a_database_stopped_and_started_fails_batches_fast_then_processes_them() {
    let server = ScratchPostgres::start().await;
    seed_company(&server.admin_url()).await;
    let (processor, _) = processor(&server.app_url(), Duration::from_secs(2));
    let first = clerk_user_created("evt_before", "user_before").to_json_string();
    assert!(failed(
        &processor
            .handle_batch(&batch(vec![record("w", "clerk", first, 1, 0)]))
            .await
    )
    .is_empty());

    server.stop_server();
    let bodies: Vec<String> = (0..3)
        .map(|n| {
            clerk_user_created(&format!("evt_down_{n}"), &format!("user_down_{n}")).to_json_string()
        })
        .collect();
    let delivery = |receive_count: u32| {
        batch(
            bodies
                .iter()
                .enumerate()
                .map(|(n, body)| record(&format!("r{n}"), "clerk", body.clone(), receive_count, 0))
                .collect(),
        )
    };
    for receive_count in 1..=2 {
        let started = std::time::Instant::now();
        let response = processor.handle_batch(&delivery(receive_count)).await;
        assert_eq!(
            failed(&response),
            ["r0", "r1", "r2"],
            "the whole batch retries"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a down database fails the batch fast, took {:?}",
            started.elapsed()
        );
    }
    {
        let delays = processor.runner.ports.delays.lock().unwrap();
        assert_eq!(delays.len(), 6);
        for (n, (_, delay)) in delays.iter().enumerate() {
            let ceiling = BACKOFF.ceiling_secs(n as u32 / 3 + 1);
            assert!(
                (1..=ceiling).contains(delay),
                "{delay} within 1..={ceiling}"
            );
        }
    }
    assert!(processor.runner.ports.dead.lock().unwrap().is_empty());

    server.start_server();
    // The connection is re-opened after its short backoff; SQS's delay is far longer.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let response = processor.handle_batch(&delivery(3)).await;
    assert!(failed(&response).is_empty(), "{response:?}");
    assert_eq!(
        count(
            &server.admin_url(),
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'"
        )
        .await,
        4
    );
}

/// The `batch_transactions` of the batch document the processor emitted last.
fn transactions(lines: &Lines) -> u64 {
    lines
        .0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|d| d.get("batch_transactions").and_then(Value::as_u64))
        .unwrap()
}

#[tokio::test]
async fn a_good_batch_goes_through_in_one_transaction() {
    let db = TestDb::create().await;
    seed_company(&db.admin_url).await;
    let (processor, lines) = processor(&db.app_url, Duration::from_secs(5));
    let records = (0..10)
        .map(|n| {
            let body = clerk_user_created(&format!("evt_g{n}"), &format!("user_g{n}"));
            record(&format!("g{n}"), "clerk", body.to_json_string(), 1, 0)
        })
        .collect();
    let response = processor.handle_batch(&batch(records)).await;
    assert!(failed(&response).is_empty());
    assert_eq!(transactions(&lines), 1);
    assert_eq!(
        count(&db.admin_url, "SELECT count(*) FROM members").await,
        10
    );
}

#[tokio::test]
async fn a_batch_with_poison_an_unknown_tenant_and_a_stale_event_settles_each_as_alone() {
    let db = TestDb::create().await;
    seed_company(&db.admin_url).await;
    let (processor, lines) = processor(&db.app_url, Duration::from_secs(5));
    let mut records: Vec<SqsMessage> = (0..7)
        .map(|n| {
            let body = clerk_user_created(&format!("evt_s{n}"), &format!("user_s{n}"));
            record(&format!("good{n}"), "clerk", body.to_json_string(), 1, 0)
        })
        .collect();
    // The same user as good0, an hour older: stale.
    let mut stale = clerk_user_created("evt_old", "user_s0");
    stale.meta.occurred_at = Some("2023-12-31T23:00:00Z".into());
    records.push(record("stale", "clerk", stale.to_json_string(), 1, 0));
    let mut stranger = clerk_user_created("evt_stranger", "user_x");
    stranger.meta.company_id = "co_nobody".into();
    records.insert(
        3,
        record("unknown", "clerk", stranger.to_json_string(), 1, 0),
    );
    records.insert(
        5,
        record("poison", "clerk", "{not an envelope".into(), 1, 0),
    );

    let response = processor.handle_batch(&batch(records)).await;
    assert!(failed(&response).is_empty(), "nothing left to retry");
    let mut dead = processor.runner.ports.dead.lock().unwrap().clone();
    dead.sort();
    assert_eq!(
        dead,
        [
            ("poison".to_owned(), "permanent"),
            ("unknown".to_owned(), "permanent")
        ]
    );
    assert_eq!(transactions(&lines), 10, "each record alone");
    assert_eq!(
        count(
            &db.admin_url,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'"
        )
        .await,
        7
    );
    assert_eq!(
        count(
            &db.admin_url,
            "SELECT count(*) FROM webhook_events WHERE status = 'skipped_stale'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&db.admin_url, "SELECT count(*) FROM members").await,
        7
    );
}
