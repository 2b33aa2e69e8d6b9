//! The webhook functions' Lambda wiring: configuration from the environment (validated at cold
//! start), clients built once, then `lambda_http::run`. `functions/webhook-*` call [`run`].

use std::sync::Arc;
use std::time::Duration;

use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use inlet_adapters::aws::{
    sdk_config_for, DynamoDedupe, DynamoRateLimiter, DynamoSources, Patience, SqsQueue,
};
use inlet_core::clock::now_ms;
use inlet_core::config::{self, Deployment, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_webhooks::intake::{
    CachedSources, Completion, DedupeStore, EventQueue, Intake, IntakeConfig, IntakeRequest,
    IntakeResponse, RateLimiter, SourceStore, DEFAULT_BODY_LIMIT,
};

use crate::after_response::AfterResponse;
use crate::http::to_http;
use crate::telemetry::{self, LogFormat};

pub use inlet_webhooks::providers::Provider;
pub use lambda_http::Error;

/// Everything a webhook function reads from its environment.
#[derive(Debug)]
pub struct IntakeSettings {
    pub intake: IntakeConfig,
    pub sources_table: String,
    pub idempotency_table: String,
    pub rate_limit_table: String,
    pub events_queue_url: String,
    pub events_queue_max_message_bytes: usize,
    pub source_cache: Duration,
    /// How long an unknown source id is remembered as unknown.
    pub source_miss_cache: Duration,
    pub dedupe_lease: Duration,
    pub dedupe_ttl: Duration,
    pub keys: KeyRing,
}

impl IntakeSettings {
    pub fn from_env(provider: Provider, env: &impl Env) -> Result<Self, SettingsError> {
        let secs = |name, default| {
            config::parsed_or(env, name, default, "a whole number of seconds")
                .map(Duration::from_secs)
        };
        let keys = config::key_ring(env)?;
        Ok(Self {
            intake: IntakeConfig {
                provider,
                production: Deployment::from_env(env).is_production(),
                max_body_bytes: config::parsed_or(
                    env,
                    "INLET_MAX_BODY_BYTES",
                    DEFAULT_BODY_LIMIT,
                    "a number of bytes",
                )?,
            },
            sources_table: config::required(env, "SOURCES_TABLE")?,
            idempotency_table: config::required(env, "IDEMPOTENCY_TABLE")?,
            rate_limit_table: config::required(env, "RATE_LIMIT_TABLE")?,
            events_queue_url: config::required(env, "EVENTS_QUEUE_URL")?,
            events_queue_max_message_bytes: config::parsed_or(
                env,
                "EVENTS_QUEUE_MAX_MESSAGE_BYTES",
                1_048_576,
                "a number of bytes",
            )?,
            source_cache: secs("INLET_SOURCE_CACHE_SECS", 30)?,
            source_miss_cache: secs("INLET_SOURCE_MISS_CACHE_SECS", 5)?,
            dedupe_lease: secs("INLET_DEDUPE_LEASE_SECS", 60)?,
            dedupe_ttl: secs("INLET_DEDUPE_TTL_SECS", 7 * 24 * 3600)?,
            keys,
        })
    }
}

pub type LiveIntake =
    Intake<CachedSources<DynamoSources>, DynamoRateLimiter, DynamoDedupe, SqsQueue>;

/// Builds the pipeline with its AWS adapters (clients once per container).
pub async fn build(settings: IntakeSettings) -> LiveIntake {
    let sdk = sdk_config_for(Patience::Intake).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Intake {
        config: settings.intake,
        sources: CachedSources::new(
            DynamoSources::new(dynamodb.clone(), settings.sources_table, settings.keys),
            settings.source_cache,
            settings.source_miss_cache,
        ),
        rate_limiter: DynamoRateLimiter::new(dynamodb.clone(), settings.rate_limit_table),
        dedupe: DynamoDedupe::new(
            dynamodb,
            settings.idempotency_table,
            millis(settings.dedupe_lease),
            millis(settings.dedupe_ttl) / 1000,
        ),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.events_queue_url,
            settings.events_queue_max_message_bytes,
        ),
    }
}

/// The whole of a webhook function's `main`.
pub async fn run(provider: Provider) -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = IntakeSettings::from_env(provider, &ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let intake = Arc::new(build(settings).await);
    let after = AfterResponse::default();
    let function: Arc<str> = format!("webhook-{provider}").into();
    let handler = service_fn(|request: Request| {
        let intake = intake.clone();
        let after = after.clone();
        let function = function.clone();
        async move {
            let function = &*function;
            let started = std::time::Instant::now();
            let (answer, completion) = accept(&intake, request).await;
            // The provider has its answer without waiting for the dedupe record's completion.
            if let Some(completion) = completion {
                after.defer(async move { intake.complete(completion).await });
            }
            crate::metrics::emit_invocation(
                &crate::metrics::Stdout,
                function,
                &crate::metrics::answered(started.elapsed(), answer.status),
            );
            crate::metrics::emit_requests(&crate::metrics::Stdout, function, answer.label);
            Ok::<_, Error>(to_http(answer))
        }
    });
    lambda_runtime::Runtime::new(lambda_http::Adapter::from(handler))
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(after.layer())
        .run()
        .await
}

/// One API Gateway (HTTP API, payload v2) request through the whole pipeline, completion
/// included.
pub async fn handle<S, R, D, Q>(intake: &Intake<S, R, D, Q>, request: Request) -> Response<Body>
where
    S: SourceStore,
    R: RateLimiter,
    D: DedupeStore,
    Q: EventQueue,
{
    let (answer, completion) = accept(intake, request).await;
    if let Some(completion) = completion {
        intake.complete(completion).await;
    }
    to_http(answer)
}

/// The pipeline's answer to one request, before it becomes an HTTP response, and what is left
/// to do after answering ([`Intake::accept`]).
pub async fn accept<S, R, D, Q>(
    intake: &Intake<S, R, D, Q>,
    request: Request,
) -> (IntakeResponse, Option<Completion>)
where
    S: SourceStore,
    R: RateLimiter,
    D: DedupeStore,
    Q: EventQueue,
{
    let now_ms = now_ms();
    let source_id = request
        .path_parameters_ref()
        .and_then(|p| p.first("source_id"))
        .unwrap_or_default()
        .to_owned();
    let trace_id = request
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    intake
        .accept(&IntakeRequest {
            source_id: &source_id,
            headers: request.headers(),
            body: request.body().as_ref(),
            received_at_ms: now_ms,
            trace_id: trace_id.as_deref(),
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn settings_name_the_missing_variable() {
        let env: HashMap<&str, &str> = [("INLET_KEYS", KEYS), ("SOURCES_TABLE", "s")].into();
        let error = IntakeSettings::from_env(Provider::Stripe, &env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable IDEMPOTENCY_TABLE is required (see template.yaml for its value)"
        );
        let no_keys: HashMap<&str, &str> = HashMap::new();
        assert!(IntakeSettings::from_env(Provider::Stripe, &no_keys)
            .unwrap_err()
            .to_string()
            .contains("INLET_KEYS"));
    }

    #[test]
    fn settings_read_defaults_and_production_mode() {
        let env: HashMap<&str, &str> = [
            ("INLET_KEYS", KEYS),
            ("INLET_ENV", "production"),
            ("SOURCES_TABLE", "s"),
            ("IDEMPOTENCY_TABLE", "i"),
            ("RATE_LIMIT_TABLE", "r"),
            ("EVENTS_QUEUE_URL", "http://q"),
            ("INLET_DEDUPE_LEASE_SECS", "30"),
        ]
        .into();
        let settings = IntakeSettings::from_env(Provider::Github, &env).unwrap();
        assert!(settings.intake.production);
        assert_eq!(settings.intake.max_body_bytes, 256 * 1024);
        assert_eq!(settings.dedupe_lease, Duration::from_secs(30));
        assert_eq!(settings.dedupe_ttl, Duration::from_secs(604_800));
        let bad: HashMap<&str, &str> =
            [("INLET_KEYS", KEYS), ("INLET_MAX_BODY_BYTES", "lots")].into();
        assert!(IntakeSettings::from_env(Provider::Github, &bad)
            .unwrap_err()
            .to_string()
            .contains("INLET_MAX_BODY_BYTES"));
    }
}
