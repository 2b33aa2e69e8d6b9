//! The `send-reminders` consumer's wiring: settings, the channels (HTTP webhooks, SES email),
//! the shared circuit breaker, the batch runner. `functions/send-reminders` calls [`run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

use inlet_adapters::aws::{
    sdk_config_for, BreakerPolicy, DynamoBreaker, Patience, SesEmail, SqsRedelivery,
};
use inlet_adapters::http::{HttpDelivery, HttpSettings};
use inlet_core::config::{self, Deployment, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_domain::ports::{DeadLetters, Visibility};
use inlet_domain::reminders::send::{handle_record, SendPolicy, Sender};
use inlet_postgres::{Database, DbSettings};

use crate::batch::{receive_count, Backoff, BatchRunner};
use crate::metrics::{self, MetricsSink};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

/// The `function` dimension of this function's metrics.
pub const FUNCTION: &str = "send-reminders";

pub struct SendSettings {
    pub database: DbSettings,
    pub dlq_url: String,
    /// The circuit breaker's DynamoDB table (none: no breaker).
    pub breaker_table: Option<String>,
    pub keys: KeyRing,
    pub http: HttpSettings,
    pub policy: SendPolicy,
}

impl SendSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database: DbSettings::new(config::required(env, "DATABASE_URL")?),
            dlq_url: config::required(env, "REMINDERS_DLQ_URL")?,
            breaker_table: env.get("BREAKER_TABLE").filter(|t| !t.is_empty()),
            keys: config::key_ring(env)?,
            http: HttpSettings {
                production: Deployment::from_env(env).is_production(),
                timeout: Duration::from_secs(config::parsed_or(
                    env,
                    "DELIVERY_TIMEOUT_SECS",
                    10,
                    "a whole number of seconds",
                )?),
            },
            policy: SendPolicy {
                max_attempts: config::parsed_or(env, "MAX_ATTEMPTS", 5, "a whole number")?,
                click_base_url: env.get("CLICK_BASE_URL").filter(|u| !u.is_empty()),
                link_ttl: Duration::from_secs(
                    86_400
                        * config::parsed_or::<u64>(
                            env,
                            "LINK_TTL_DAYS",
                            30,
                            "a whole number of days",
                        )?,
                ),
            },
        })
    }
}

/// Everything a batch needs, built once per container.
pub struct ReminderProcessor<P = SqsRedelivery> {
    pub runner: BatchRunner<P>,
    pub database: Database,
    pub sender: Sender,
    pub metrics: Arc<dyn MetricsSink>,
}

impl<P: DeadLetters + Visibility> ReminderProcessor<P> {
    pub async fn handle_batch(&self, event: &SqsEvent) -> SqsBatchResponse {
        let started = Instant::now();
        let (response, stats) = self
            .runner
            .run(event, async |record| {
                let body = record.body.as_deref().unwrap_or_default();
                handle_record(
                    &self.database,
                    &self.sender,
                    body.as_bytes(),
                    receive_count(record),
                )
                .await
            })
            .await;
        metrics::emit_invocation(
            &*self.metrics,
            FUNCTION,
            &stats.invocation(started.elapsed()),
        );
        metrics::emit_function_metrics(
            &*self.metrics,
            FUNCTION,
            &[
                ("reminders_handled", "Count", stats.succeeded() as u64),
                ("reminders_dead_lettered", "Count", stats.permanent() as u64),
                ("reminders_retrying", "Count", stats.transient() as u64),
                (
                    "batch_duration",
                    "Milliseconds",
                    started.elapsed().as_millis() as u64,
                ),
            ],
        );
        response
    }
}

/// The whole of `send-reminders`' `main`.
pub async fn run() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = SendSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let sdk = sdk_config_for(Patience::Background).await;
    let sender = Sender::new(
        settings.policy,
        settings.keys,
        HttpDelivery::new(settings.http)?,
    )
    .with_email(SesEmail::new(aws_sdk_sesv2::Client::new(&sdk)));
    let sender = match settings.breaker_table {
        Some(table) => sender.with_breaker(DynamoBreaker::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
            BreakerPolicy::default(),
        )),
        None => sender,
    };
    let processor = ReminderProcessor {
        runner: BatchRunner {
            ports: SqsRedelivery::new(aws_sdk_sqs::Client::new(&sdk), settings.dlq_url),
            backoff: Backoff::default(),
        },
        database: Database::new(settings.database),
        sender,
        metrics: Arc::new(metrics::Stdout),
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(Box::pin(processor.handle_batch(&event.payload)).await)
    }))
    .await
}
