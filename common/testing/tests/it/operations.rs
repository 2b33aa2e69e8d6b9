//! Operations against real Postgres and moto: redrive that survives a crash between send and
//! delete, replays that re-apply once, the digest, the watchdog and retention.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use inlet_adapters::aws::{lambda_record, SqsDeadLetters, SqsRedelivery};
use inlet_core::clock::now_ms;
use inlet_core::crypto::KeyRing;
use inlet_core::StoreError;
use inlet_domain::audit::Actor;
use inlet_domain::ops::{dead_letters, digest, replay, retention, watchdog};
use inlet_domain::ports::{Alerts, BoxFuture, DeadLetterQueue, DeadMessage, Received, Severity};
use inlet_domain::{process, Processed, Projections};
use inlet_lambda::batch::{Backoff, BatchRunner};
use inlet_lambda::metrics::Discard;
use inlet_lambda::process_events::Processor;
use inlet_postgres::{Connection, Database, DbSettings};
use inlet_testing::{AwsFixture, TestDb, TEST_KEYS};
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{EventQueue, QueueError};
use inlet_webhooks::providers::Provider;

use crate::projection_fixtures::{envelope, fixture_path};

fn operator() -> Actor {
    Actor::Operator("test-operator".into())
}

const COMPANY: &str = "co_fixtures";

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

/// Alerts published, kept for the test to read.
#[derive(Default)]
struct Recorded(Mutex<Vec<(Severity, String, String)>>);

impl Alerts for Recorded {
    fn publish<'a>(
        &'a self,
        severity: Severity,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0
            .lock()
            .unwrap()
            .push((severity, subject.to_owned(), message.to_owned()));
        Box::pin(async { Ok(()) })
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn company(db: &TestDb, id: &str) {
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Ops')",
            &[&id],
        )
        .await
        .unwrap();
}

fn processor(db: &TestDb, fx: &AwsFixture) -> Processor<SqsRedelivery> {
    Processor {
        runner: BatchRunner {
            ports: SqsRedelivery::new(fx.sqs.clone(), &fx.events_dlq_url),
            backoff: Backoff::default(),
        },
        database: Database::new(DbSettings::new(&db.app_url)),
        projections: inlet_domain::projections::all(),
        keys: keys(),
        metrics: Arc::new(Discard),
    }
}

/// Everything on the events queue as one Lambda batch (received, hidden for a minute).
async fn batch(fx: &AwsFixture) -> SqsEvent {
    let arn = format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        fx.events_queue_url.rsplit('/').next().unwrap()
    );
    let mut event = SqsEvent::default();
    event.records = fx
        .drain_events()
        .await
        .iter()
        .map(|m| lambda_record(m, &arn, "us-east-1"))
        .collect();
    event
}

/// A DLQ port whose deletes fail while `crash` is set: a redrive that dies after sending.
struct CrashAfterSend {
    inner: SqsDeadLetters,
    crash: AtomicBool,
}

impl DeadLetterQueue for CrashAfterSend {
    async fn receive(&self, queue: &str, hide_secs: i32) -> Result<Vec<Received>, StoreError> {
        self.inner.receive(queue, hide_secs).await
    }
    async fn release(&self, queue: &str, receipts: &[String]) -> Result<(), StoreError> {
        self.inner.release(queue, receipts).await
    }
    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), StoreError> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(StoreError("killed between send and delete".into()));
        }
        self.inner.delete(queue, receipt).await
    }
    async fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.inner.send(queue, body, attributes).await
    }
}

#[tokio::test]
async fn an_unknown_tenant_dead_letters_with_its_code_and_a_redrive_killed_midway_still_processes_it_once(
) {
    let fx = AwsFixture::create().await;
    let db = TestDb::create().await;
    let queue = inlet_adapters::aws::SqsQueue::new(fx.sqs.clone(), &fx.events_queue_url, 1_048_576);
    let body = std::fs::read(fixture_path(Provider::Stripe, "invoice.paid")).unwrap();
    // The company does not exist yet: a payload-named tenant, accepted by intake.
    let poison = envelope(Provider::Stripe, "invoice.paid", body);
    queue.enqueue(&poison).await.unwrap();
    let processor = processor(&db, &fx);
    let response = processor.handle_batch(&batch(&fx).await).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "dead-lettered, not retried"
    );

    let port = SqsDeadLetters::new(fx.sqs.clone());
    let scanned = dead_letters::scan(&port, &fx.events_dlq_url).await.unwrap();
    dead_letters::release(&port, &fx.events_dlq_url, &scanned)
        .await
        .unwrap();
    let messages: Vec<&DeadMessage> = scanned.iter().map(|r| &r.message).collect();
    let groups = dead_letters::group(&messages, now_ms());
    let key = (
        "permanent".to_owned(),
        "unknown_tenant".to_owned(),
        "stripe".to_owned(),
        COMPANY.to_owned(),
    );
    assert_eq!(groups.get(&key).map(|g| g.count), Some(1), "{groups:?}");

    // A dry run moves nothing.
    let filter = dead_letters::Filter {
        code: Some("unknown_tenant".into()),
        ..dead_letters::Filter::default()
    };
    let source = |_: &DeadMessage| Some(fx.events_queue_url.clone());
    let dry = dead_letters::redrive(
        &port,
        &fx.events_dlq_url,
        source,
        &filter,
        dead_letters::RedriveOptions::new(10, true),
    )
    .await
    .unwrap();
    assert_eq!(dry.moved.len(), 1);
    assert!(
        fx.drain_events().await.is_empty(),
        "a dry run sends nothing"
    );
    let scanned = dead_letters::scan(&port, &fx.events_dlq_url).await.unwrap();
    assert_eq!(scanned.len(), 1, "the dead letter is still there");
    dead_letters::release(&port, &fx.events_dlq_url, &scanned)
        .await
        .unwrap();

    // The cause fixed; a redrive dies between send and delete: the copy is out, the dead letter
    // stays. The next redrive sends it again. The ledger makes the two copies one event.
    company(&db, COMPANY).await;
    let crashing = CrashAfterSend {
        inner: SqsDeadLetters::new(fx.sqs.clone()),
        crash: AtomicBool::new(true),
    };
    let quick = dead_letters::RedriveOptions {
        hide_secs: 2,
        ..dead_letters::RedriveOptions::new(10, false)
    };
    let failed = dead_letters::redrive(&crashing, &fx.events_dlq_url, source, &filter, quick).await;
    assert!(failed.is_err(), "the crash is reported");
    crashing.crash.store(false, Ordering::SeqCst);
    // The crashed run's dead letter reappears once its hide ends.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let moved = dead_letters::redrive(&crashing, &fx.events_dlq_url, source, &filter, quick)
        .await
        .unwrap();
    assert_eq!(moved.moved.len(), 1);
    let redelivered = batch(&fx).await;
    assert_eq!(redelivered.records.len(), 2, "two copies: one per redrive");
    let response = processor.handle_batch(&redelivered).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM payments").await,
        1,
        "processed once"
    );
    assert!(
        dead_letters::scan(&port, &fx.events_dlq_url)
            .await
            .unwrap()
            .is_empty(),
        "the DLQ is empty"
    );
}

/// An events queue that keeps what it is given.
#[derive(Default)]
struct Captured(Mutex<Vec<Envelope<'static>>>);

impl EventQueue for Captured {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        self.0.lock().unwrap().push(envelope.clone().into_owned());
        Ok(())
    }
}

/// Replays the selection as the operator CLI does (as the owner), then processes what it sent.
async fn replay_and_process(
    db: &TestDb,
    selection: &replay::Selection,
    projections: &Projections,
) -> Vec<Processed> {
    let mut owner = Connection::from(db.admin().await);
    let queue = Captured::default();
    let replayed = replay::replay(&mut owner, &operator(), &queue, &keys(), selection, false)
        .await
        .unwrap();
    assert_eq!(replayed.enqueued, replayed.selected.len());
    // Audited: one row per company, as many events as were sent.
    let audited: i64 = owner
        .query_one(
            "SELECT coalesce(sum((details->>'events')::bigint), 0)::bigint FROM audit_log \
              WHERE action = 'replay' AND actor = 'operator:test-operator'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(audited >= replayed.enqueued as i64, "{audited} audited");
    let mut app = Connection::from(db.app().await);
    let mut outcomes = Vec::new();
    let sent = std::mem::take(&mut *queue.0.lock().unwrap());
    for envelope in &sent {
        assert!(envelope.meta.replay, "marked as a replay");
        outcomes.push(
            process(&mut app, envelope, projections, &keys())
                .await
                .unwrap(),
        );
    }
    outcomes
}

fn one_event(event_id: &str) -> replay::Selection {
    replay::Selection {
        event_id: Some(event_id.to_owned()),
        limit: 10,
        ..replay::Selection::default()
    }
}

#[tokio::test]
async fn an_ignored_event_replayed_once_its_projection_exists_is_applied_once() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    let body = std::fs::read(fixture_path(Provider::Stripe, "invoice.paid")).unwrap();
    let paid = envelope(Provider::Stripe, "invoice.paid", body);
    let mut app = Connection::from(db.app().await);
    // First, before any projection was registered for the type: recorded `ignored`.
    let none = Projections::default();
    assert_eq!(
        process(&mut app, &paid, &none, &keys()).await,
        Ok(Processed::Ignored)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM payments").await, 0);

    let all = inlet_domain::projections::all();
    let id = paid.meta.event_id.to_string();
    assert_eq!(
        replay_and_process(&db, &one_event(&id), &all).await,
        [Processed::Applied]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed' AND replay_count = 1"
        )
        .await,
        1
    );
    // Again: applied again, still one payment, counted twice.
    assert_eq!(
        replay_and_process(&db, &one_event(&id), &all).await,
        [Processed::Applied]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM payments").await, 1);
    assert_eq!(
        count(&db, "SELECT max(replay_count)::int8 FROM webhook_events").await,
        2
    );
}

#[tokio::test]
async fn a_replayed_failed_payment_opens_no_second_case_and_no_second_payment() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    let body = std::fs::read(fixture_path(Provider::Stripe, "invoice.payment_failed")).unwrap();
    let failed = envelope(Provider::Stripe, "invoice.payment_failed", body);
    let all = inlet_domain::projections::all();
    let mut app = Connection::from(db.app().await);
    assert_eq!(
        process(&mut app, &failed, &all, &keys()).await,
        Ok(Processed::Applied)
    );
    let before = (
        count(&db, "SELECT count(*) FROM recovery_cases").await,
        count(&db, "SELECT count(*) FROM payments").await,
        count(&db, "SELECT count(*) FROM reminders").await,
    );
    assert_eq!(before, (1, 1, 4));
    let id = failed.meta.event_id.to_string();
    assert_eq!(
        replay_and_process(&db, &one_event(&id), &all).await,
        [Processed::Applied]
    );
    assert_eq!(
        (
            count(&db, "SELECT count(*) FROM recovery_cases").await,
            count(&db, "SELECT count(*) FROM payments").await,
            count(&db, "SELECT count(*) FROM reminders").await,
        ),
        before
    );
}

#[tokio::test]
async fn a_replay_older_than_its_objects_newest_event_is_stale_and_a_dry_run_changes_nothing() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    let all = inlet_domain::projections::all();
    let mut app = Connection::from(db.app().await);
    let subscription = |event_id: &str, status: &str, at: &str| {
        let body = format!(
            r#"{{"id":"{event_id}","type":"customer.subscription.updated","data":{{"object":{{"id":"sub_r","object":"subscription","status":"{status}","customer":"cus_r"}}}}}}"#
        );
        let mut e = envelope(
            Provider::Stripe,
            "customer.subscription.updated",
            body.into_bytes(),
        );
        e.meta.event_id = event_id.to_owned().into();
        e.meta.object_type = Some("subscription".into());
        e.meta.object_id = Some("sub_r".into());
        e.meta.occurred_at = Some(at.to_owned());
        e
    };
    let older = subscription("evt_r_old", "past_due", "2026-11-01T00:00:00Z");
    let newer = subscription("evt_r_new", "active", "2026-11-02T00:00:00Z");
    assert_eq!(
        process(&mut app, &older, &all, &keys()).await,
        Ok(Processed::Applied)
    );
    assert_eq!(
        process(&mut app, &newer, &all, &keys()).await,
        Ok(Processed::Applied)
    );
    assert_eq!(
        replay_and_process(&db, &one_event("evt_r_old"), &all).await,
        [Processed::Stale]
    );
    let status: String = db
        .admin()
        .await
        .query_one(
            "SELECT status FROM memberships WHERE external_id = 'sub_r'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "active", "the stale replay changed nothing");

    // A dry run: counted and checked, nothing sent, nothing changed.
    let mut owner = Connection::from(db.admin().await);
    let queue = Captured::default();
    let selection = replay::Selection {
        company: Some(COMPANY.into()),
        provider: Some("stripe".into()),
        limit: 100,
        ..replay::Selection::default()
    };
    let dry = replay::replay(&mut owner, &operator(), &queue, &keys(), &selection, true)
        .await
        .unwrap();
    assert_eq!(dry.selected.len(), 2);
    assert_eq!(dry.enqueued, 0);
    assert!(queue.0.lock().unwrap().is_empty());
    assert_eq!(
        count(&db, "SELECT sum(replay_count) FROM webhook_events").await,
        1
    );
}

#[tokio::test]
async fn a_replay_whose_payload_was_dropped_is_refused_and_sends_nothing() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    let body = std::fs::read(fixture_path(Provider::Stripe, "invoice.paid")).unwrap();
    let paid = envelope(Provider::Stripe, "invoice.paid", body);
    let mut app = Connection::from(db.app().await);
    process(&mut app, &paid, &inlet_domain::projections::all(), &keys())
        .await
        .unwrap();
    db.admin()
        .await
        .execute(
            "UPDATE webhook_events SET payload_enc = NULL, payload_key_id = NULL",
            &[],
        )
        .await
        .unwrap();
    let mut owner = Connection::from(db.admin().await);
    let queue = Captured::default();
    let refused = replay::replay(
        &mut owner,
        &operator(),
        &queue,
        &keys(),
        &one_event(&paid.meta.event_id),
        false,
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("retention dropped it"),
        "{refused}"
    );
    assert!(queue.0.lock().unwrap().is_empty());
}

/// A dead letter as a consumer writes it, or (`code` None) as SQS moves one.
async fn dead_letter(fx: &AwsFixture, queue: &str, body: &str, code: Option<&str>) {
    let mut request = fx.sqs.send_message().queue_url(queue).message_body(body);
    let attribute = |v: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    if let Some(code) = code {
        request = request
            .message_attributes("inlet_error_code", attribute(code))
            .message_attributes("inlet_error_class", attribute("permanent"))
            .message_attributes("provider", attribute("whop"));
    }
    request.send().await.unwrap();
}

#[tokio::test]
async fn two_causes_make_one_digest_with_their_counts_and_nothing_new_makes_none() {
    let fx = AwsFixture::create().await;
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    // A reminder whose job died in the reminders DLQ, still `enqueued`.
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at) VALUES ('{COMPANY}', 'stripe', 'sub_d', 'in_d', 100, 'usd', now());
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status, enqueue_attempts)
             VALUES ('{COMPANY}', 1, 0, now(), 'enqueued', 1);"
        ))
        .await
        .unwrap();
    let reminders_dlq = fx
        .sqs
        .create_queue()
        .queue_name(format!("ops-reminders-dlq-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    dead_letter(&fx, &fx.events_dlq_url, "{}", Some("unknown_tenant")).await;
    dead_letter(&fx, &fx.events_dlq_url, "{}", Some("unknown_tenant")).await;
    dead_letter(&fx, &fx.events_dlq_url, "not an envelope", None).await;
    let job = r#"{"key":"rem-1-1","reminder_id":1,"company_id":"co_fixtures","case_id":1,"due_at":"x","attempt":1}"#;
    dead_letter(&fx, &reminders_dlq, job, Some("endpoint_gone")).await;

    let queues = [
        digest::DigestQueue {
            name: "EventsDLQ".into(),
            url: fx.events_dlq_url.clone(),
            reminders: false,
            exports: false,
        },
        digest::DigestQueue {
            name: "RemindersDLQ".into(),
            url: reminders_dlq.clone(),
            reminders: true,
            exports: false,
        },
    ];
    let port = SqsDeadLetters::new(fx.sqs.clone());
    let alerts = Recorded::default();
    let mut ops = Connection::from(db.ops().await);
    let first = digest::run(&mut ops, &port, &alerts, &queues, now_ms())
        .await
        .unwrap();
    assert!(first.published);
    assert_eq!(first.settled_reminders, 1);
    {
        let published = alerts.0.lock().unwrap();
        assert_eq!(published.len(), 1, "one digest per run");
        let (severity, subject, text) = &published[0];
        assert_eq!(*severity, Severity::Warn);
        assert_eq!(subject, "Inlet DLQ digest: 4 new dead letter(s)");
        assert!(text.contains("EventsDLQ: 3 message(s), 3 new"), "{text}");
        assert!(
            text.contains("unknown_tenant") && text.contains("     2  (2 new)"),
            "{text}"
        );
        assert!(text.contains("retries_exhausted"), "{text}");
        assert!(text.contains("RemindersDLQ: 1 message(s), 1 new"), "{text}");
    }
    let (status, code): (String, Option<String>) = {
        let row = db
            .admin()
            .await
            .query_one(
                "SELECT status, failure_code FROM reminders WHERE id = 1",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (status.as_str(), code.as_deref()),
        ("failed", Some("endpoint_gone"))
    );
    // Nothing was consumed: the DLQs still hold everything.
    assert_eq!(
        dead_letters::scan(&port, &fx.events_dlq_url)
            .await
            .unwrap()
            .len(),
        3
    );
    let scanned = dead_letters::scan(&port, &fx.events_dlq_url).await.unwrap();
    dead_letters::release(&port, &fx.events_dlq_url, &scanned)
        .await
        .unwrap();

    // An hour later, nothing new: no digest.
    let second = digest::run(&mut ops, &port, &alerts, &queues, now_ms() + 1)
        .await
        .unwrap();
    assert!(!second.published);
    assert_eq!(alerts.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stuck_reminder_goes_back_to_pending_and_is_sent_once() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    db.admin()
        .await
        .batch_execute(&format!(
            "UPDATE companies SET settings = '{{\"recovery_url\": \"https://x.example/pay\"}}' WHERE company_id = '{COMPANY}';
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at) VALUES ('{COMPANY}', 'stripe', 'sub_s', 'in_s', 100, 'usd', now());
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status, enqueue_attempts)
             VALUES ('{COMPANY}', 1, 0, now(), 'enqueued', 1);"
        ))
        .await
        .unwrap();
    let receiver = Arc::new(crate::send_reminders::Receiver::default());
    let url = crate::send_reminders::serve(receiver.clone()).await;
    crate::send_reminders::add_endpoint(&db, COMPANY, &url).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let policy = watchdog::Policy {
        stuck_after: Duration::from_secs(1),
        ..watchdog::Policy::default()
    };
    let alerts = Recorded::default();
    let mut ops = Connection::from(db.ops().await);
    let report = watchdog::run(&mut ops, &alerts, 0, &policy, now_ms())
        .await
        .unwrap();
    assert_eq!(report.requeued, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reminders WHERE status = 'pending'"
        )
        .await,
        1
    );

    // The scheduler claims it again (attempt 2); the old job (attempt 1) turns up late.
    #[derive(Default)]
    struct Jobs(Mutex<Vec<inlet_domain::reminders::ReminderJob>>);
    impl inlet_domain::ports::ReminderQueue for Jobs {
        async fn send_batch(
            &self,
            jobs: &[inlet_domain::reminders::ReminderJob],
        ) -> Result<Vec<String>, StoreError> {
            self.0.lock().unwrap().extend_from_slice(jobs);
            Ok(vec![])
        }
    }
    let queue = Jobs::default();
    let mut scheduler = Connection::from(db.scheduler().await);
    let stats = inlet_domain::reminders::schedule::run_once(
        &mut scheduler,
        &queue,
        10,
        Duration::from_secs(5),
        now_ms() + 1000,
    )
    .await
    .unwrap();
    assert_eq!(stats.enqueued, 1);
    let new_job = queue.0.lock().unwrap()[0].clone();
    assert_eq!(new_job.attempt, 2);
    let old_job = inlet_domain::reminders::ReminderJob {
        key: inlet_domain::reminders::ReminderJob::key_for(1, 1),
        attempt: 1,
        ..new_job.clone()
    };
    let sender = crate::send_reminders::sender_with(false, None);
    let mut app = Connection::from(db.app().await);
    assert_eq!(
        sender.deliver(&mut app, &old_job, 1).await,
        Ok("superseded by a newer job")
    );
    assert_eq!(sender.deliver(&mut app, &new_job, 1).await, Ok("sent"));
    assert_eq!(receiver.delivered.lock().unwrap().len(), 1, "sent once");
}

#[tokio::test]
async fn a_silent_source_raises_one_alert_not_one_per_run_and_an_old_queue_one_per_rise() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    db.admin()
        .await
        .execute(
            "INSERT INTO source_activity (company_id, source_id, provider, events, first_received_at,
                 last_received_at, usual_gap_secs, last_queue_age_ms)
             VALUES ($1, 'src_quiet', 'stripe', 500, now() - interval '10 days',
                     now() - interval '2 hours', 60, 90000)",
            &[&COMPANY],
        )
        .await
        .unwrap();
    let alerts = Recorded::default();
    let mut ops = Connection::from(db.ops().await);
    let policy = watchdog::Policy::default();
    let first = watchdog::run(&mut ops, &alerts, 3, &policy, now_ms())
        .await
        .unwrap();
    assert_eq!(first.silent.len(), 1);
    assert_eq!(first.silent[0].source_id, "src_quiet");
    // The queue: 90 s old with 3 waiting is past the page threshold.
    assert_eq!(first.alerts.len(), 2, "{:?}", first.alerts);
    assert!(first.alerts.iter().any(|(s, _)| *s == Severity::Page));
    let second = watchdog::run(&mut ops, &alerts, 3, &policy, now_ms())
        .await
        .unwrap();
    assert!(second.silent.is_empty(), "marked: not again");
    assert!(second.alerts.is_empty(), "{:?}", second.alerts);
    assert_eq!(alerts.0.lock().unwrap().len(), 2);

    // Events arrive again: the source can be reported silent again later.
    let app = db.app().await;
    app.execute(
        "SELECT note_source_activity($1, 'src_quiet', 'stripe', ARRAY[now()], 10)",
        &[&COMPANY],
    )
    .await
    .unwrap();
    let cleared: Option<String> = db
        .admin()
        .await
        .query_one("SELECT silent_alerted_at::text FROM source_activity", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cleared, None);
}

#[tokio::test]
async fn retention_deletes_old_rows_drops_old_payloads_and_keeps_new_rows_deduplicating() {
    let db = TestDb::create().await;
    company(&db, COMPANY).await;
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, event_type,
                 received_at, status, payload_enc, payload_key_id)
             SELECT '{COMPANY}', 'src_fixtures_stripe', 'stripe', 'evt_old_' || g, 'invoice.paid',
                    now() - interval '100 days', 'completed', '\\x00', 'k'
               FROM generate_series(1, 50000) g;
             INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, event_type,
                 received_at, status, payload_enc, payload_key_id)
             SELECT '{COMPANY}', 'src_fixtures_stripe', 'stripe', 'evt_mid_' || g, 'invoice.paid',
                    now() - interval '40 days', 'completed', '\\x00', 'k'
               FROM generate_series(1, 10000) g;
             INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, event_type,
                 received_at, status, payload_enc, payload_key_id)
             SELECT '{COMPANY}', 'src_fixtures_stripe', 'stripe', 'evt_new_' || g, 'invoice.paid',
                    now() - interval '1 day', 'completed', '\\x00', 'k'
               FROM generate_series(1, 40000) g;
             ANALYZE webhook_events;"
        ))
        .await
        .unwrap();
    let mut ops = Connection::from(db.ops().await);
    let budget = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let report = retention::run(&mut ops, 5000, budget).await.unwrap();
    let took = started.elapsed();
    eprintln!("retention over 100,000 rows: {report:?} in {took:?}");
    assert!(report.complete && took < budget, "{report:?} in {took:?}");
    assert_eq!(report.events_deleted, 50_000);
    assert_eq!(report.payloads_dropped, 10_000);
    assert_eq!(
        count(&db, "SELECT count(*) FROM webhook_events").await,
        50_000
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE payload_enc IS NULL"
        )
        .await,
        10_000,
        "40-day-old rows kept without their payload"
    );
    // Nothing left: a second run does nothing and rescans nothing.
    let again = retention::run(&mut ops, 5000, budget).await.unwrap();
    assert_eq!((again.events_deleted, again.payloads_dropped), (0, 0));
    // Each run is on the audit log's system chain, with its counts.
    let runs: Vec<serde_json::Value> = db
        .admin()
        .await
        .query(
            "SELECT details FROM audit_log WHERE company_id IS NULL AND action = 'retention.run' \
              AND actor = 'function:retention' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["events_deleted"], 50_000);
    assert_eq!(runs[1]["events_deleted"], 0);

    // A kept row still deduplicates its event.
    let mut kept = envelope(Provider::Stripe, "invoice.paid", b"{}".to_vec());
    kept.meta.event_id = "evt_new_7".into();
    let mut app = Connection::from(db.app().await);
    assert_eq!(
        process(&mut app, &kept, &inlet_domain::projections::all(), &keys()).await,
        Ok(Processed::Duplicate)
    );
}

#[tokio::test]
async fn a_cron_whose_database_is_down_fails_as_transient_and_changes_nothing() {
    let scratch = inlet_testing::ScratchPostgres::start().await;
    let mut ops = Connection::from(inlet_postgres::connect(&scratch.ops_url()).await.unwrap());
    scratch.stop_server();
    let failed = retention::run(&mut ops, 100, Duration::from_secs(5)).await;
    let (report, failure) = failed.unwrap_err();
    assert_eq!(
        report,
        retention::Report::default(),
        "nothing counted: nothing done"
    );
    assert!(
        matches!(
            failure,
            inlet_core::Failure::TransientBatch(_) | inlet_core::Failure::Transient(_)
        ),
        "{failure:?}"
    );
    let alerts = Recorded::default();
    let failed = watchdog::run(&mut ops, &alerts, 0, &watchdog::Policy::default(), now_ms()).await;
    assert!(
        matches!(failed, Err(inlet_core::Failure::TransientBatch(_))),
        "{failed:?}"
    );
    assert!(alerts.0.lock().unwrap().is_empty());
}

/// An alert channel that is down.
struct Down;

impl Alerts for Down {
    fn publish<'a>(
        &'a self,
        _: Severity,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError("the topic is unreachable".into())) })
    }
}

#[tokio::test]
async fn a_digest_whose_queue_or_topic_is_down_fails_as_transient_and_reports_it_next_run() {
    let fx = AwsFixture::create().await;
    let db = TestDb::create().await;
    dead_letter(&fx, &fx.events_dlq_url, "{}", Some("unknown_tenant")).await;
    let queues = [digest::DigestQueue {
        name: "EventsDLQ".into(),
        url: fx.events_dlq_url.clone(),
        reminders: false,
        exports: false,
    }];
    let mut ops = Connection::from(db.ops().await);
    let digest_state = "SELECT count(*) FROM ops_state WHERE key = 'dlq_digest'";

    // SQS unreachable: transient, nothing published, nothing remembered.
    let unreachable = aws_sdk_sqs::Client::from_conf(
        fx.sqs
            .config()
            .to_builder()
            .endpoint_url("http://127.0.0.1:9")
            .build(),
    );
    let alerts = Recorded::default();
    let failed = digest::run(
        &mut ops,
        &SqsDeadLetters::new(unreachable),
        &alerts,
        &queues,
        now_ms(),
    )
    .await;
    assert!(
        matches!(failed, Err(inlet_core::Failure::Transient(_))),
        "{failed:?}"
    );
    assert!(alerts.0.lock().unwrap().is_empty());
    assert_eq!(count(&db, digest_state).await, 0);

    // The topic down: transient, and the digest is not marked sent.
    let port = SqsDeadLetters::new(fx.sqs.clone());
    let failed = digest::run(&mut ops, &port, &Down, &queues, now_ms()).await;
    assert!(
        matches!(failed, Err(inlet_core::Failure::Transient(_))),
        "{failed:?}"
    );
    assert_eq!(count(&db, digest_state).await, 0);

    // The next run, with both back, reports the dead letter as new: nothing was lost.
    let run = digest::run(&mut ops, &port, &alerts, &queues, now_ms())
        .await
        .unwrap();
    assert!(run.published);
    let published = alerts.0.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert!(
        published[0].2.contains("EventsDLQ: 1 message(s), 1 new"),
        "{}",
        published[0].2
    );
}

#[tokio::test]
async fn an_export_job_that_died_is_settled_failed_by_the_digest_and_its_sealed_id_cleared() {
    let fx = AwsFixture::create().await;
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_x', 'X');
             INSERT INTO members (company_id, provider, external_id) VALUES ('co_x', 'stripe', 'cus_x');",
        )
        .await
        .unwrap();
    let mut owner = Connection::from(db.admin().await);
    let company = inlet_core::CompanyId::parse("co_x").unwrap();
    let id =
        inlet_domain::privacy::request_export(&mut owner, &keys(), &operator(), &company, "cus_x")
            .await
            .unwrap();
    // Its job, moved to the exports DLQ by SQS after its retries (no Inlet code: retries_exhausted).
    let job = format!(r#"{{"company_id":"co_x","request_id":{id}}}"#);
    dead_letter(&fx, &fx.events_dlq_url, &job, None).await;
    let queues = [digest::DigestQueue {
        name: "ExportsDLQ".into(),
        url: fx.events_dlq_url.clone(),
        reminders: false,
        exports: true,
    }];
    let mut ops = Connection::from(db.ops().await);
    let port = SqsDeadLetters::new(fx.sqs.clone());
    let run = digest::run(&mut ops, &port, &Recorded::default(), &queues, now_ms())
        .await
        .unwrap();
    assert_eq!(run.failed_exports, 1);
    let row = admin
        .query_one(
            "SELECT status, counts->>'reason', subject_enc IS NULL FROM privacy_requests WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2)
        ),
        ("failed".to_owned(), "retries_exhausted".to_owned(), true)
    );
    // Settled once: the next run finds nothing pending.
    let again = digest::run(&mut ops, &port, &Recorded::default(), &queues, now_ms())
        .await
        .unwrap();
    assert_eq!(again.failed_exports, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit_log WHERE action = 'privacy.export_failed'"
        )
        .await,
        1
    );
}
