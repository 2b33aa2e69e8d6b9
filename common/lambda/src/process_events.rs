//! The `process-events` function: SQS batches of envelopes into tenant Postgres, through the
//! batch runner and the ledger. `functions/process-events` calls [`run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{service_fn, LambdaEvent};

use inlet_adapters::aws::{sdk_config_for, Patience, SqsRedelivery};
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_core::Failure;
use inlet_domain::events::{self, Handled};
use inlet_domain::ports::{DeadLetters, Visibility};
use inlet_domain::{Processed, Projections};
use inlet_postgres::{Database, DbSettings};

use crate::batch::{Backoff, BatchRunner, BatchStats, Settled};
use crate::metrics::{self, BatchMetrics, MetricsSink, Outcome};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

#[derive(Debug)]
pub struct ProcessSettings {
    pub database: DbSettings,
    pub dlq_url: String,
    pub backoff: Backoff,
    pub keys: KeyRing,
}

impl ProcessSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        let keys = config::key_ring(env)?;
        let millis = |name, default| {
            config::parsed_or(env, name, default, "a whole number of milliseconds")
                .map(Duration::from_millis)
        };
        let secs =
            |name, default| config::parsed_or(env, name, default, "a whole number of seconds");
        Ok(Self {
            database: DbSettings {
                statement_timeout: millis("DB_STATEMENT_TIMEOUT_MS", 5_000)?,
                ..DbSettings::new(config::required(env, "DATABASE_URL")?)
            },
            dlq_url: config::required(env, "EVENTS_DLQ_URL")?,
            backoff: Backoff {
                base_secs: secs("RETRY_BASE_SECS", 2)?,
                max_secs: secs("RETRY_MAX_SECS", 900)?,
            },
            keys,
        })
    }
}

/// The `function` dimension of this function's metrics.
pub const FUNCTION: &str = "process-events";

/// Everything a batch needs, built once per container.
pub struct Processor<P = SqsRedelivery> {
    pub runner: BatchRunner<P>,
    pub database: Database,
    pub projections: Projections,
    pub keys: KeyRing,
    pub metrics: Arc<dyn MetricsSink>,
}

fn outcome_of(processed: Processed) -> Outcome {
    match processed {
        Processed::Applied => Outcome::Processed,
        Processed::Duplicate => Outcome::Duplicate,
        Processed::Stale => Outcome::Stale,
        Processed::Ignored => Outcome::Ignored,
    }
}

/// The provider intake put on the message, for the metric dimension.
fn provider_attribute(record: &SqsMessage) -> Option<&str> {
    record
        .message_attributes
        .get("provider")
        .and_then(|attribute| attribute.string_value.as_deref())
}

fn sent_timestamp(record: &SqsMessage) -> Option<u64> {
    record.attributes.get("SentTimestamp")?.parse().ok()
}

impl<P: DeadLetters + Visibility> Processor<P> {
    pub async fn handle_batch(&self, event: &SqsEvent) -> SqsBatchResponse {
        let started = Instant::now();
        // The whole batch in one transaction; if that does not go through, nothing of it was
        // committed and each record is handled alone, as the runner always did.
        let bodies: Vec<&[u8]> = event
            .records
            .iter()
            .map(|r| r.body.as_deref().unwrap_or_default().as_bytes())
            .collect();
        let now = metrics::now_ms();
        let oldest_ms = event
            .records
            .iter()
            .filter_map(sent_timestamp)
            .map(|sent| now.saturating_sub(sent))
            .max()
            .unwrap_or(0);
        let whole = events::handle_batch(
            &self.database,
            &self.projections,
            &self.keys,
            &bodies,
            i64::try_from(oldest_ms).unwrap_or(i64::MAX),
        )
        .await;
        let noted = whole.is_some();
        let transactions = if whole.is_some() {
            1
        } else {
            event.records.len() as u64
        };
        let (response, stats, processed) = match whole {
            Some(processed) => (
                SqsBatchResponse::default(),
                BatchStats {
                    settled: vec![Settled::Done; event.records.len()],
                },
                processed,
            ),
            None => {
                let mut processed = Vec::with_capacity(event.records.len());
                let (response, stats) = self
                    .runner
                    .run(event, async |record| {
                        processed.push(self.handle_record(record).await?);
                        Ok(())
                    })
                    .await;
                (response, stats, processed)
            }
        };
        // Records settle in batch order, and each `Done` one pushed its outcome in that order.
        let mut outcomes = processed.iter().map(|h| h.outcome);
        let mut batch = BatchMetrics::default();
        batch.transactions = transactions;
        for (record, settled) in event.records.iter().zip(&stats.settled) {
            let outcome = match settled {
                Settled::Done => outcomes.next().map_or(Outcome::Processed, outcome_of),
                Settled::DeadLettered => Outcome::Permanent,
                Settled::Retrying => Outcome::Transient,
            };
            batch.record(
                provider_attribute(record),
                outcome,
                sent_timestamp(record),
                now,
            );
        }
        batch.emit(&*self.metrics, FUNCTION, started.elapsed());
        metrics::emit_invocation(
            &*self.metrics,
            FUNCTION,
            &stats.invocation(started.elapsed()),
        );
        // For the watchdog's no-data and queue-age checks (a whole batch noted them in its own
        // transaction); never fails the batch.
        if !noted {
            let oldest_ms = i64::try_from(oldest_ms).unwrap_or(i64::MAX);
            if let Err(failure) = events::note_activity(&self.database, &processed, oldest_ms).await
            {
                tracing::warn!(%failure, "could not note the batch's source activity");
            }
        }
        tracing::info!(
            succeeded = stats.succeeded(),
            permanent = stats.permanent(),
            transient = stats.transient(),
            "batch done"
        );
        response
    }

    async fn handle_record(&self, record: &SqsMessage) -> Result<Handled, Failure> {
        let body = record.body.as_deref().unwrap_or_default();
        events::handle_record(
            &self.database,
            &self.projections,
            &self.keys,
            body.as_bytes(),
        )
        .await
    }
}

/// The whole of `process-events`' `main`.
pub async fn run() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = ProcessSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let sdk = sdk_config_for(Patience::Background).await;
    let processor = Processor {
        runner: BatchRunner {
            ports: SqsRedelivery::new(aws_sdk_sqs::Client::new(&sdk), settings.dlq_url),
            backoff: settings.backoff,
        },
        database: Database::new(settings.database),
        projections: inlet_domain::projections::all(),
        keys: settings.keys,
        metrics: Arc::new(metrics::Stdout),
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        // Boxed: one allocation per batch keeps the future type shallow for the compiler.
        Ok::<_, Error>(Box::pin(processor.handle_batch(&event.payload)).await)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn settings_name_what_is_missing() {
        let keys = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let env: HashMap<&str, &str> =
            [("INLET_KEYS", keys), ("DATABASE_URL", "postgres://a@b/c")].into();
        let error = ProcessSettings::from_env(&env).unwrap_err();
        assert!(error.to_string().contains("EVENTS_DLQ_URL"), "{error}");
        let env: HashMap<&str, &str> = [
            ("INLET_KEYS", keys),
            ("DATABASE_URL", "postgres://a@b/c"),
            ("EVENTS_DLQ_URL", "http://q"),
            ("RETRY_MAX_SECS", "soon"),
        ]
        .into();
        assert!(ProcessSettings::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("RETRY_MAX_SECS"));
    }
}
