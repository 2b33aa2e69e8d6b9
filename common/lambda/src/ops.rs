//! The maintenance crons' wiring: `dlq-digest` (hourly), `watchdog` (every 5 minutes) and
//! `retention` (daily). Each connects as `inlet_ops`, reports its run as metrics, and fails
//! transiently (Lambda retries the schedule) when the database or a queue cannot answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inlet_adapters::aws::{sdk_config_for, Patience, SnsAlerts, SqsDeadLetters};
use inlet_core::clock::now_ms;
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_domain::ops::{digest, retention, watchdog};
use inlet_domain::ports::Alerts;
use inlet_postgres::{Database, DbSettings};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};

use crate::metrics::{self, Invocation, MetricsSink};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

/// The operator topics every cron alerts through.
fn alerts(env: &impl Env, sdk: &aws_config::SdkConfig) -> Result<SnsAlerts, SettingsError> {
    Ok(SnsAlerts::new(
        aws_sdk_sns::Client::new(sdk),
        config::required(env, "ALERTS_WARN_TOPIC_ARN")?,
        config::required(env, "ALERTS_PAGE_TOPIC_ARN")?,
    ))
}

fn database(env: &impl Env) -> Result<Database, SettingsError> {
    Ok(Database::new(DbSettings {
        statement_timeout: Duration::from_secs(30),
        ..DbSettings::new(config::required(env, "DATABASE_URL")?)
    }))
}

/// One scheduled run's work: boxed, so each cron's future stays a shallow type.
pub(crate) type Step<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, String>> + Send + 'a>>;

/// Runs `step` once per scheduled invocation with its duration and outcome as metrics.
pub(crate) async fn scheduled<'a, F>(
    function: &'static str,
    sink: Arc<dyn MetricsSink>,
    step: F,
) -> Result<(), Error>
where
    F: Fn() -> Step<'a>,
{
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| {
        let (sink, step) = (sink.clone(), &step);
        async move {
            let started = Instant::now();
            let result = step().await;
            metrics::emit_invocation(
                &*sink,
                function,
                &Invocation {
                    duration: started.elapsed(),
                    success: u64::from(result.is_ok()),
                    failure: u64::from(result.is_err()),
                    retries: 0,
                },
            );
            result.map_err(Error::from)
        }
    }))
    .await
}

/// The whole of `dlq-digest`'s `main`.
pub async fn run_dlq_digest() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let env = ProcessEnv;
    let sdk = sdk_config_for(Patience::Background).await;
    let (alerts, database) = match (alerts(&env, &sdk), database(&env)) {
        (Ok(a), Ok(d)) => (a, d),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "invalid configuration; the function cannot start");
            return Err(error.into());
        }
    };
    let queues = [
        ("EventsDLQ", "EVENTS_DLQ_URL", false, false),
        ("RemindersDLQ", "REMINDERS_DLQ_URL", true, false),
        ("ExportsDLQ", "EXPORTS_DLQ_URL", false, true),
    ]
    .into_iter()
    .map(|(name, variable, reminders, exports)| {
        config::required(&env, variable).map(|url| digest::DigestQueue {
            name: name.to_owned(),
            url,
            reminders,
            exports,
        })
    })
    .collect::<Result<Vec<_>, _>>()
    .inspect_err(
        |error| tracing::error!(%error, "invalid configuration; the function cannot start"),
    )?;
    let port = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk));
    let sink: Arc<dyn MetricsSink> = Arc::new(metrics::Stdout);
    let metrics_sink = sink.clone();
    let (alerts, database, queues, port, metrics_sink) =
        (&alerts, &database, &queues, &port, &metrics_sink);
    scheduled("dlq-digest", sink, move || Box::pin(async move {
        let mut connection = database.client().await.map_err(|e| e.to_string())?;
        let run = digest::run(&mut connection, port, alerts as &dyn Alerts, queues, now_ms())
            .await
            .map_err(|f| f.to_string())?;
        let counts: Vec<(&str, &str, u64)> = run
            .digests
            .iter()
            .flat_map(|d| {
                d.codes
                    .iter()
                    .map(move |((_, code), (count, _))| (d.queue.as_str(), code.as_str(), *count as u64))
            })
            .collect();
        metrics::emit_queue_counts(&**metrics_sink, "dlq-digest", "dead_letters", &counts);
        tracing::info!(published = run.published, settled_reminders = run.settled_reminders, "dlq digest done");
        Ok(json!({
            "published": run.published,
            "settled_reminders": run.settled_reminders,
            "dead_letters": run.digests.iter().map(|d| json!({"queue": d.queue, "total": d.total, "new": d.new})).collect::<Vec<_>>(),
        }))
    }))
    .await
}

/// The whole of `watchdog`'s `main`.
pub async fn run_watchdog() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let env = ProcessEnv;
    let sdk = sdk_config_for(Patience::Background).await;
    let settings = (|| -> Result<_, SettingsError> {
        let secs = |name, default| {
            config::parsed_or(&env, name, default, "a whole number of seconds")
                .map(Duration::from_secs)
        };
        Ok((
            alerts(&env, &sdk)?,
            database(&env)?,
            config::required(&env, "EVENTS_QUEUE_URL")?,
            watchdog::Policy {
                stuck_after: secs("REMINDER_STUCK_AFTER_SECS", 5400)?,
                queue_age_warn: secs("QUEUE_AGE_WARN_SECS", 30)?,
                queue_age_page: secs("QUEUE_AGE_PAGE_SECS", 60)?,
                ..watchdog::Policy::default()
            },
        ))
    })()
    .inspect_err(
        |error| tracing::error!(%error, "invalid configuration; the function cannot start"),
    )?;
    let (alerts, database, queue_url, policy) = settings;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let sink: Arc<dyn MetricsSink> = Arc::new(metrics::Stdout);
    let metrics_sink = sink.clone();
    let (alerts, database, queue_url, policy, sqs, metrics_sink) =
        (&alerts, &database, &queue_url, &policy, &sqs, &metrics_sink);
    scheduled("watchdog", sink, move || Box::pin(async move {
        let backlog = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| inlet_adapters::aws::describe_error(&e))?
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).cloned())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let mut connection = database.client().await.map_err(|e| e.to_string())?;
        let report = watchdog::run(&mut connection, alerts as &dyn Alerts, backlog, policy, now_ms())
            .await
            .map_err(|f| f.to_string())?;
        metrics::emit_function_metrics(
            &**metrics_sink,
            "watchdog",
            &[
                ("reminders_requeued", "Count", u64::from(report.requeued)),
                ("events_queue_age", "Milliseconds", u64::try_from(report.queue_age_ms).unwrap_or(0)),
                ("silent_sources", "Count", report.silent.len() as u64),
            ],
        );
        tracing::info!(skipped = report.skipped, requeued = report.requeued, queue_age_ms = report.queue_age_ms, silent = report.silent.len(), alerts = report.alerts.len(), "watchdog done");
        Ok(json!({
            "skipped": report.skipped,
            "requeued": report.requeued,
            "queue_age_ms": report.queue_age_ms,
            "silent": report.silent.iter().map(|s| s.source_id.clone()).collect::<Vec<_>>(),
            "alerts": report.alerts.iter().map(|(severity, subject)| json!({"severity": severity.as_str(), "subject": subject})).collect::<Vec<_>>(),
        }))
    }))
    .await
}

/// The whole of `retention`'s `main`.
pub async fn run_retention() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let env = ProcessEnv;
    let settings = (|| -> Result<_, SettingsError> {
        Ok((
            database(&env)?,
            config::parsed_or(&env, "RETENTION_BATCH", 5000, "a whole number of rows")?,
            Duration::from_secs(config::parsed_or(
                &env,
                "RUN_BUDGET_SECS",
                600,
                "a whole number of seconds",
            )?),
        ))
    })()
    .inspect_err(
        |error| tracing::error!(%error, "invalid configuration; the function cannot start"),
    )?;
    let (database, batch, budget) = settings;
    let sink: Arc<dyn MetricsSink> = Arc::new(metrics::Stdout);
    let metrics_sink = sink.clone();
    let (database, metrics_sink) = (&database, &metrics_sink);
    scheduled("retention", sink, move || {
        Box::pin(async move {
            let mut connection = database.client().await.map_err(|e| e.to_string())?;
            let (report, failure) = match retention::run(&mut connection, batch, budget).await {
                Ok(report) => (report, None),
                Err((report, failure)) => (report, Some(failure)),
            };
            // What was committed is counted, whether or not the run finished.
            metrics::emit_function_metrics(
                &**metrics_sink,
                "retention",
                &[
                    ("events_deleted", "Count", report.events_deleted),
                    ("attempts_deleted", "Count", report.attempts_deleted),
                    ("payloads_dropped", "Count", report.payloads_dropped),
                ],
            );
            tracing::info!(
                events_deleted = report.events_deleted,
                attempts_deleted = report.attempts_deleted,
                payloads_dropped = report.payloads_dropped,
                complete = report.complete,
                "retention done"
            );
            if let Some(failure) = failure {
                return Err(failure.to_string());
            }
            Ok(json!({
                "events_deleted": report.events_deleted,
                "attempts_deleted": report.attempts_deleted,
                "payloads_dropped": report.payloads_dropped,
                "complete": report.complete,
            }))
        })
    })
    .await
}
