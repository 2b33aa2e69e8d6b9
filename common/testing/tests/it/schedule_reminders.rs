//! The schedule-reminders cron against real Postgres and moto.

use std::collections::BTreeSet;
use std::time::Duration;

use inlet_adapters::aws::SqsReminderQueue;
use inlet_core::StoreError;
use inlet_domain::ports::ReminderQueue;
use inlet_domain::reminders::schedule::run_once;
use inlet_domain::reminders::ReminderJob;
use inlet_postgres::Connection;
use inlet_testing::{AwsFixture, TestDb};

fn now() -> i64 {
    i64::try_from(inlet_lambda::metrics::now_ms()).unwrap()
}

/// 25 due reminders over two companies, and one due tomorrow.
async fn setup() -> TestDb {
    let db = TestDb::create().await;
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B');
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             SELECT CASE WHEN n % 2 = 0 THEN 'co_a' ELSE 'co_b' END, 'stripe', 'sub_' || n, 'in_' || n,
                    4900, 'usd', now()
               FROM generate_series(1, 5) n;
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
             SELECT c.company_id, c.id, o, now() - interval '1 minute' * o
               FROM recovery_cases c, generate_series(0, 4) o;
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
             SELECT company_id, id, 999, now() + interval '1 day' FROM recovery_cases WHERE id = 1;",
        )
        .await
        .unwrap();
    db
}

pub(crate) async fn reminders_queue(fx: &AwsFixture) -> String {
    let name = format!(
        "reminders_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    fx.sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned()
}

pub(crate) async fn drain(fx: &AwsFixture, url: &str) -> Vec<ReminderJob> {
    let mut jobs = Vec::new();
    loop {
        let received = fx
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return jobs;
        }
        for message in messages {
            jobs.push(serde_json::from_str(message.body().unwrap()).unwrap());
            fx.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

async fn status_counts(db: &TestDb) -> Vec<(String, i64)> {
    db.admin()
        .await
        .query(
            "SELECT status, count(*) FROM reminders GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn two_scheduler_runs_at_once_enqueue_each_due_reminder_once() {
    let db = setup().await;
    let fx = AwsFixture::create().await;
    let url = reminders_queue(&fx).await;
    let queue = SqsReminderQueue::new(fx.sqs.clone(), &url);
    let run = async || {
        let mut connection = Connection::from(db.scheduler().await);
        run_once(&mut connection, &queue, 7, Duration::from_secs(20), now())
            .await
            .unwrap()
    };
    let (first, second) = tokio::join!(run(), run());
    assert_eq!(first.enqueued + second.enqueued, 25, "{first:?} {second:?}");

    let jobs = drain(&fx, &url).await;
    assert_eq!(jobs.len(), 25);
    let reminders: BTreeSet<i64> = jobs.iter().map(|j| j.reminder_id).collect();
    assert_eq!(reminders.len(), 25, "no reminder enqueued twice");
    for job in &jobs {
        assert_eq!(job.key, format!("rem-{}-1", job.reminder_id));
        assert!(job.company_id == "co_a" || job.company_id == "co_b");
    }
    assert_eq!(
        status_counts(&db).await,
        [("enqueued".to_owned(), 25), ("pending".to_owned(), 1)]
    );
    // Every claim across tenants is on the audit log's system chain, with what it did.
    let claims: Vec<serde_json::Value> = db
        .admin()
        .await
        .query(
            "SELECT details FROM audit_log WHERE company_id IS NULL \
               AND actor = 'function:schedule-reminders' AND action = 'reminders.claim' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Two runs at once, seven at a time: every claim that took something is one row, and the
    // rows add up to the 25 reminders, none released.
    let claimed: u64 = claims.iter().map(|c| c["claimed"].as_u64().unwrap()).sum();
    assert_eq!(claimed, 25, "{claims:?}");
    assert!(
        claims.len() >= 4 && claims.iter().all(|c| c["released"] == 0),
        "{claims:?}"
    );
}

/// Refuses the jobs of even reminder ids, as a partial SendMessageBatch failure does.
struct HalfBroken<'a>(&'a SqsReminderQueue);

impl ReminderQueue for HalfBroken<'_> {
    async fn send_batch(&self, jobs: &[ReminderJob]) -> Result<Vec<String>, StoreError> {
        let (bad, good): (Vec<_>, Vec<_>) =
            jobs.iter().cloned().partition(|j| j.reminder_id % 2 == 0);
        if !good.is_empty() {
            self.0.send_batch(&good).await?;
        }
        Ok(bad.into_iter().map(|j| j.key).collect())
    }
}

struct Down;

impl ReminderQueue for Down {
    async fn send_batch(&self, _: &[ReminderJob]) -> Result<Vec<String>, StoreError> {
        Err(StoreError("queue unavailable".into()))
    }
}

#[tokio::test]
async fn jobs_that_miss_the_queue_are_released_and_go_out_next_run_with_a_new_key() {
    let db = setup().await;
    let fx = AwsFixture::create().await;
    let url = reminders_queue(&fx).await;
    let queue = SqsReminderQueue::new(fx.sqs.clone(), &url);
    let mut connection = Connection::from(db.scheduler().await);

    let down = run_once(&mut connection, &Down, 100, Duration::from_secs(5), now())
        .await
        .unwrap();
    assert_eq!((down.claimed, down.enqueued, down.released), (25, 0, 25));
    assert_eq!(
        status_counts(&db).await,
        [("pending".to_owned(), 26)],
        "a queue that is down loses nothing"
    );

    let half = run_once(
        &mut connection,
        &HalfBroken(&queue),
        100,
        Duration::from_secs(5),
        now(),
    )
    .await
    .unwrap();
    let first = drain(&fx, &url).await;
    assert_eq!(half.enqueued as usize, first.len());
    assert!(first
        .iter()
        .all(|j| j.reminder_id % 2 == 1 && j.attempt == 2));

    let rest = run_once(&mut connection, &queue, 100, Duration::from_secs(5), now())
        .await
        .unwrap();
    let second = drain(&fx, &url).await;
    assert_eq!(rest.enqueued as usize, second.len());
    assert!(second
        .iter()
        .all(|j| j.reminder_id % 2 == 0 && j.attempt == 3));
    assert_eq!(first.len() + second.len(), 25);
    assert_eq!(
        status_counts(&db).await,
        [("enqueued".to_owned(), 25), ("pending".to_owned(), 1)]
    );
    // The claim whose jobs all missed the queue is audited with what it gave back.
    let first_claim: serde_json::Value = db
        .admin()
        .await
        .query_one(
            "SELECT details FROM audit_log WHERE action = 'reminders.claim' ORDER BY seq LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        first_claim,
        serde_json::json!({"claimed": 25, "released": 25})
    );
}
