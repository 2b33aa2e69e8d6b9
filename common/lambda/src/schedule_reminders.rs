//! The `schedule-reminders` cron's wiring: settings, the SQS reminders queue, one run per
//! EventBridge invocation. `functions/schedule-reminders` calls [`run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use inlet_adapters::aws::{sdk_config_for, Patience, SqsReminderQueue};
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_domain::reminders::schedule::run_once;
use inlet_postgres::{Database, DbSettings};

use crate::metrics::{self, MetricsSink};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

/// The `function` dimension of this function's metrics.
pub const FUNCTION: &str = "schedule-reminders";

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
    crate::ops::scheduled(FUNCTION, sink.clone(), move || {
        Box::pin(async move {
            let started = Instant::now();
            let mut connection = database.client().await.map_err(|e| e.to_string())?;
            let stats = run_once(
                &mut connection,
                queue,
                settings.claim_limit,
                settings.run_budget,
                inlet_core::clock::now_ms(),
            )
            .await
            .map_err(|f| f.to_string())?;
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
            Ok(serde_json::json!({
                "claimed": stats.claimed, "enqueued": stats.enqueued, "released": stats.released
            }))
        })
    })
    .await
}
