//! The `schedule-reminders` cron (EventBridge, every minute): claims due reminders across
//! tenants through `claim_due_reminders` (SECURITY DEFINER, SKIP LOCKED, bounded) and enqueues
//! one job per reminder to the reminders queue, ten per SendMessageBatch call.
//!
//! Claim, enqueue and the release of whatever did not reach the queue happen in one
//! transaction: a crash before COMMIT leaves every claimed reminder pending (a job that did go
//! out meanwhile carries the same key the next run gives it, and the sender delivers a reminder
//! once). Overlapping runs never take the same reminder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::aws::{sdk_config_for, Patience};
use crate::config::{self, Env, ProcessEnv, SettingsError};
use crate::consumer::Failure;
use crate::db::{failure_for, Connection, Database, DbSettings};
use crate::intake::StoreError;
use crate::metrics::{self, MetricsSink};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

/// The `function` dimension of this function's metrics.
pub const FUNCTION: &str = "schedule-reminders";

/// SQS's SendMessageBatch limit.
pub const SEND_BATCH: usize = 10;

/// One reminder job on the reminders queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderJob {
    /// `rem-{reminder_id}-{attempt}`: the same for every copy of one enqueue attempt.
    pub key: String,
    pub reminder_id: i64,
    pub company_id: String,
    pub case_id: i64,
    /// RFC 3339.
    pub due_at: String,
    pub attempt: i32,
}

impl ReminderJob {
    pub fn key_for(reminder_id: i64, attempt: i32) -> String {
        format!("rem-{reminder_id}-{attempt}")
    }
}

/// The reminders queue: sends up to ten jobs, returns the keys that did not make it.
pub trait ReminderQueue {
    fn send_batch(
        &self,
        jobs: &[ReminderJob],
    ) -> impl std::future::Future<Output = Result<Vec<String>, StoreError>> + Send;
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub claimed: u64,
    pub enqueued: u64,
    pub released: u64,
}

#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    pub database: DbSettings,
    pub queue_url: String,
    /// Reminders claimed per transaction.
    pub claim_limit: i32,
    /// Stop claiming after this long: the next run continues.
    pub run_budget: Duration,
}

impl ScheduleSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database: DbSettings::new(config::required(env, "DATABASE_URL")?),
            queue_url: config::required(env, "REMINDERS_QUEUE_URL")?,
            claim_limit: config::parsed_or(env, "CLAIM_LIMIT", 100, "a whole number of reminders")?,
            run_budget: Duration::from_secs(config::parsed_or(
                env,
                "RUN_BUDGET_SECS",
                20,
                "a whole number of seconds",
            )?),
        })
    }
}

/// One claim transaction: claim up to `limit`, enqueue, release what failed, commit.
async fn claim_and_enqueue(
    connection: &mut Connection,
    queue: &impl ReminderQueue,
    limit: i32,
    at_ms: i64,
) -> Result<RunStats, Failure> {
    let tx = connection.tx().await.map_err(|e| failure_for(&e))?;
    let rows = tx
        .query(
            "SELECT reminder_id, company_id, case_id,
                    to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), attempt
               FROM claim_due_reminders(to_timestamp($2::int8 / 1000.0), $1)",
            &[&limit, &at_ms],
        )
        .await
        .map_err(|e| failure_for(&e))?;
    let jobs: Vec<ReminderJob> = rows
        .iter()
        .map(|row| {
            let reminder_id: i64 = row.get(0);
            let attempt: i32 = row.get(4);
            ReminderJob {
                key: ReminderJob::key_for(reminder_id, attempt),
                reminder_id,
                company_id: row.get(1),
                case_id: row.get(2),
                due_at: row.get(3),
                attempt,
            }
        })
        .collect();
    let mut failed_ids = Vec::new();
    for chunk in jobs.chunks(SEND_BATCH) {
        let failed_keys = match queue.send_batch(chunk).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, "a reminder batch did not reach the queue; releasing it");
                chunk.iter().map(|j| j.key.clone()).collect()
            }
        };
        failed_ids.extend(
            chunk
                .iter()
                .filter(|j| failed_keys.contains(&j.key))
                .map(|j| j.reminder_id),
        );
    }
    let released: i32 = if failed_ids.is_empty() {
        0
    } else {
        tx.query_one("SELECT release_reminders($1)", &[&failed_ids])
            .await
            .map_err(|e| failure_for(&e))?
            .get(0)
    };
    tx.commit().await.map_err(|e| failure_for(&e))?;
    let claimed = jobs.len() as u64;
    let released = u64::try_from(released).unwrap_or(0);
    Ok(RunStats {
        claimed,
        enqueued: claimed - failed_ids.len() as u64,
        released,
    })
}

/// Claims what is due at `at_ms` (epoch milliseconds: the run's clock) and enqueues it, until
/// nothing is due, the budget is spent, or a claim enqueued nothing.
pub async fn run_once(
    connection: &mut Connection,
    queue: &impl ReminderQueue,
    limit: i32,
    budget: Duration,
    at_ms: i64,
) -> Result<RunStats, Failure> {
    let started = Instant::now();
    let mut total = RunStats::default();
    loop {
        let stats = claim_and_enqueue(connection, queue, limit, at_ms).await?;
        total.claimed += stats.claimed;
        total.enqueued += stats.enqueued;
        total.released += stats.released;
        let full = stats.claimed >= u64::try_from(limit.max(1)).unwrap_or(1);
        if !full || stats.enqueued == 0 || started.elapsed() >= budget {
            return Ok(total);
        }
    }
}

/// The reminders queue on SQS.
pub struct SqsReminderQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsReminderQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl ReminderQueue for SqsReminderQueue {
    async fn send_batch(&self, jobs: &[ReminderJob]) -> Result<Vec<String>, StoreError> {
        use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
        let text = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError(e.to_string()))
        };
        let mut entries = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let body = serde_json::to_string(job).map_err(|e| StoreError(e.to_string()))?;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .message_attributes("company_id", text(&job.company_id)?)
                    .message_attributes("job_key", text(&job.key)?)
                    .build()
                    .map_err(|e| StoreError(e.to_string()))?,
            );
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError(crate::aws::describe_error(&e)))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .filter_map(|i| jobs.get(i).map(|j| j.key.clone()))
            .collect())
    }
}

/// The whole of `schedule-reminders`' `main`.
pub async fn run() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = ScheduleSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let sdk = sdk_config_for(Patience::Background).await;
    let queue = SqsReminderQueue::new(aws_sdk_sqs::Client::new(&sdk), settings.queue_url.clone());
    let database = Database::new(settings.database.clone());
    let sink: Arc<dyn MetricsSink> = Arc::new(metrics::Stdout);
    let (queue, database, settings, sink) = (&queue, &database, &settings, &sink);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let started = Instant::now();
            let mut connection = database.client().await.map_err(|e| e.to_string())?;
            let stats = run_once(
                &mut connection,
                queue,
                settings.claim_limit,
                settings.run_budget,
                i64::try_from(metrics::now_ms()).unwrap_or(i64::MAX),
            )
            .await
            .map_err(|f| format!("{f:?}"))?;
            metrics::emit_function_metrics(
                &**sink,
                FUNCTION,
                &[
                    ("reminders_claimed", "Count", stats.claimed),
                    ("reminders_enqueued", "Count", stats.enqueued),
                    ("reminders_released", "Count", stats.released),
                    (
                        "run_duration",
                        "Milliseconds",
                        started.elapsed().as_millis() as u64,
                    ),
                ],
            );
            tracing::info!(
                claimed = stats.claimed,
                enqueued = stats.enqueued,
                released = stats.released,
                "reminders scheduled"
            );
            Ok::<_, Error>(serde_json::json!({
                "claimed": stats.claimed, "enqueued": stats.enqueued, "released": stats.released
            }))
        },
    ))
    .await
}
