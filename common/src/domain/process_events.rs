//! The `process-events` function: SQS batches of envelopes into tenant Postgres, through the
//! batch runner and the ledger. `functions/process-events` calls [`run`].

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{service_fn, LambdaEvent};

use super::{process, Processed, Projections};
use crate::aws::{sdk_config_for, Patience, SqsRedelivery};
use crate::config::{self, Env, ProcessEnv, SettingsError};
use crate::consumer::{Backoff, BatchRunner, DeadLetters, Failure, Visibility};
use crate::crypto::KeyRing;
use crate::db::{Database, DbSettings};
use crate::intake::{Envelope, EnvelopeError};
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

/// The projections process-events applies. Event types without one are recorded `ignored`.
pub fn projections() -> Projections {
    let projections = super::stripe::register(Projections::default());
    let projections = super::whop::register(projections);
    super::clerk::register(projections)
}

/// Everything a batch needs, built once per container.
pub struct Processor<P = SqsRedelivery> {
    pub runner: BatchRunner<P>,
    pub database: Database,
    pub projections: Projections,
    pub keys: KeyRing,
}

impl<P: DeadLetters + Visibility> Processor<P> {
    pub async fn handle_batch(&self, event: &SqsEvent) -> SqsBatchResponse {
        let (response, stats) = self
            .runner
            .run(event, async |record| self.handle_record(record).await)
            .await;
        tracing::info!(
            succeeded = stats.succeeded,
            permanent = stats.permanent,
            transient = stats.transient,
            "batch done"
        );
        response
    }

    async fn handle_record(&self, record: &SqsMessage) -> Result<(), Failure> {
        let body = record.body.as_deref().unwrap_or_default();
        let envelope = Envelope::from_json(body.as_bytes()).map_err(|error| match error {
            EnvelopeError::UnknownVersion(_) | EnvelopeError::Malformed(_) => {
                Failure::Permanent(error.to_string())
            }
        })?;
        let mut client = self
            .database
            .client()
            .await
            .map_err(|e| Failure::TransientBatch(e.to_string()))?;
        let outcome = process(&mut client, &envelope, &self.projections, &self.keys).await?;
        tracing::info!(
            company_id = %envelope.meta.company_id,
            provider = %envelope.meta.provider,
            event_type = %envelope.meta.event_type,
            event_id = %envelope.meta.event_id,
            outcome = outcome.status(),
            "event processed"
        );
        if outcome == Processed::Stale {
            tracing::info!(object_id = ?envelope.meta.object_id, "older than the last applied event for its object");
        }
        Ok(())
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
        projections: projections(),
        keys: settings.keys,
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
