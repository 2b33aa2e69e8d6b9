//! The `tenant-api` function: `/v1/` on the HTTP API, one function for the family because it has
//! one way in. Every request but the OpenAPI document carries a tenant API key; the tenant
//! comes from the key only, never from the request, and every query runs in that tenant's
//! row-level-security context. Order of checks: route, key format, the key's rate limit, the
//! key itself (one lookup), the route's scope, then the route's own input.
//!
//! One log line per request: method, route template, status, key id, company, duration and
//! request id; never the key, a query value or a body.

pub mod problem;
pub mod query;
pub mod route;
pub mod routes;

use std::time::Instant;

use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use inlet_adapters::aws::{
    sdk_config_for, DynamoRateLimiter, Patience, S3Exports, SqsDeadLetters, SqsExportQueue,
    SqsQueue,
};
use inlet_core::api_key::{allows, PresentedKey};
use inlet_core::clock::now_ms;
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_domain::keys::{self, Refused};
use inlet_domain::ports::{DeadLetterQueue, ExportFiles, ExportQueue};
use inlet_postgres::{Database, DbSettings};
use inlet_webhooks::intake::{EventQueue, RateDecision, RateLimit, RateLimiter};

use problem::Problem;
pub use route::Route;
use routes::Ctx;

pub use lambda_http::Error;

/// The largest request body accepted (a replay filter is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything the function reads from its environment.
#[derive(Debug)]
pub struct ApiSettings {
    pub database: DbSettings,
    pub keys: KeyRing,
    pub rate_limit_table: String,
    pub events_queue_url: String,
    pub events_queue_max_message_bytes: usize,
    /// Requests per second one key may make.
    pub key_requests_per_sec: u32,
    /// The dead-letter queues, by name: what `/v1/dead-letters` lists and an erasure searches.
    pub dlq_urls: Vec<(&'static str, String)>,
    pub exports_queue_url: String,
    pub exports_bucket: String,
    /// The queue each dead-letter queue serves (by the same names), where a redrive sends.
    pub source_urls: Vec<(&'static str, String)>,
    /// The webhook sources (a tenant rotates and disables its own).
    pub sources_table: String,
}

impl ApiSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database: DbSettings::new(config::required(env, "DATABASE_URL")?),
            keys: config::key_ring(env)?,
            rate_limit_table: config::required(env, "RATE_LIMIT_TABLE")?,
            events_queue_url: config::required(env, "EVENTS_QUEUE_URL")?,
            events_queue_max_message_bytes: config::parsed_or(
                env,
                "EVENTS_QUEUE_MAX_MESSAGE_BYTES",
                1_048_576,
                "a number of bytes",
            )?,
            key_requests_per_sec: config::parsed_or(
                env,
                "INLET_API_KEY_REQUESTS_PER_SEC",
                50,
                "a whole number of requests",
            )?,
            dlq_urls: vec![
                ("events", config::required(env, "EVENTS_DLQ_URL")?),
                ("reminders", config::required(env, "REMINDERS_DLQ_URL")?),
            ],
            exports_queue_url: config::required(env, "EXPORTS_QUEUE_URL")?,
            exports_bucket: config::required(env, "EXPORTS_BUCKET")?,
            source_urls: vec![
                ("events", config::required(env, "EVENTS_QUEUE_URL")?),
                ("reminders", config::required(env, "REMINDERS_QUEUE_URL")?),
            ],
            sources_table: config::required(env, "SOURCES_TABLE")?,
        })
    }
}

/// The API over its ports.
pub struct TenantApi<R, Q, D, E, F, S> {
    pub database: Database,
    pub keys: KeyRing,
    pub limiter: R,
    pub queue: Q,
    pub key_limit: RateLimit,
    /// The dead-letter queues (by name): listed for a tenant, searched by an erasure.
    pub dead_letters: D,
    pub dlq_urls: Vec<(&'static str, String)>,
    /// Export jobs go here; finished exports are linked from there.
    pub export_queue: E,
    pub export_files: F,
    /// The queues the dead-letter queues serve, by the same names.
    pub source_urls: Vec<(&'static str, String)>,
    pub sources: S,
}

/// What one request was, for its log line.
#[derive(Debug, Default)]
struct Seen {
    route: &'static str,
    key_id: Option<String>,
    company: Option<String>,
}

impl<R, Q, D, E, F, S> TenantApi<R, Q, D, E, F, S>
where
    S: inlet_domain::ports::SourceAdmin,
    R: RateLimiter + Sync,
    Q: EventQueue + Sync,
    D: DeadLetterQueue,
    E: ExportQueue + Sync,
    F: ExportFiles + Sync,
{
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        let mut seen = Seen::default();
        let response = match self.answer(&request, &mut seen).await {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        };
        tracing::info!(
            method = %request.method(),
            route = seen.route,
            status = response.status().as_u16(),
            key_id = seen.key_id.as_deref(),
            company_id = seen.company.as_deref(),
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            request_id = request_id.as_deref(),
            "tenant API request"
        );
        response
    }

    async fn answer(&self, request: &Request, seen: &mut Seen) -> Result<Response<Body>, Problem> {
        let mut route = Route::parse(request.method().as_str(), request.uri().path())?;
        // API Gateway decodes path parameters (`%40` is `@`); the raw path is as sent.
        if let Some(decoded) = request.path_parameters_ref().and_then(|p| p.first("id")) {
            match &mut route {
                Route::GetEvent(id)
                | Route::ReplayEvent(id)
                | Route::EraseMember(id)
                | Route::RequestExport(id)
                | Route::GetExport(id)
                | Route::RotateSource(id)
                | Route::DisableSource(id) => {
                    decoded.clone_into(id);
                }
                _ => {}
            }
        }
        seen.route = route.template();
        if !route.needs_key() {
            return Ok(routes::openapi_document());
        }
        let presented = bearer(request)?;
        seen.key_id = Some(presented.key_id().to_owned());
        self.rate_limit(&presented).await?;
        let mut connection = self.database.client().await.map_err(|error| {
            tracing::error!(%error, "database unavailable");
            Problem::unavailable()
        })?;
        let auth = match keys::authenticate(&mut connection, presented_text(request)).await? {
            Ok(auth) => auth,
            Err(refused) => return Err(refusal(refused)),
        };
        seen.company = Some(auth.company.to_string());
        if let Some(scope) = route.scope().filter(|s| !allows(&auth.scopes, *s)) {
            return Err(routes::missing_scope(scope));
        }
        let ctx = Ctx {
            keys: &self.keys,
            auth: &auth,
        };
        let query = request.uri().query();
        let connection = &mut connection;
        match &route {
            Route::ListEvents => routes::list_events(connection, &ctx, query).await,
            Route::GetEvent(id) => routes::get_event(connection, &ctx, id, query).await,
            Route::ReplayEvent(id) => {
                routes::replay_event(connection, &ctx, &self.queue, id, query).await
            }
            Route::ReplayEvents => {
                let body = json_body(request)?;
                routes::replay_events(connection, &ctx, &self.queue, query, body).await
            }
            Route::ListSources => routes::list_sources(connection, &ctx, query).await,
            Route::ListCases => routes::list_cases(connection, &ctx, query).await,
            Route::AbReport => routes::ab_report(connection, &ctx, query).await,
            Route::EraseMember(id) => {
                routes::erase_member(
                    connection,
                    &ctx,
                    &self.dead_letters,
                    &self.dlq_urls,
                    id,
                    query,
                )
                .await
            }
            Route::DeadLetters => {
                routes::list_dead_letters(&ctx, &self.dead_letters, &self.dlq_urls, query).await
            }
            Route::RequestExport(id) => {
                routes::request_export(connection, &ctx, &self.export_queue, id, query).await
            }
            Route::GetExport(id) => {
                routes::get_export(connection, &ctx, &self.export_files, id, query).await
            }
            Route::RotateSource(id) => {
                let body = json_body(request)?;
                routes::rotate_source(connection, &ctx, &self.sources, id, query, body).await
            }
            Route::DisableSource(id) => {
                routes::disable_source(connection, &ctx, &self.sources, id, query).await
            }
            Route::Me => routes::me(connection, &ctx, query).await,
            Route::OpsDeadLetters => {
                routes::list_all_dead_letters(&self.dead_letters, &self.dlq_urls, query).await
            }
            Route::OpsRedrive => {
                let body = json_body(request)?;
                routes::redrive(
                    connection,
                    &ctx,
                    &self.dead_letters,
                    &self.redrive_queues(),
                    query,
                    body,
                )
                .await
            }
            Route::OpsHealth => {
                routes::health(
                    connection,
                    &ctx,
                    &self.dead_letters,
                    &self.redrive_queues(),
                    query,
                )
                .await
            }
            Route::OpenApi => Ok(routes::openapi_document()),
        }
    }

    /// (name, dead-letter queue URL, the URL of the queue it serves), for every pair.
    fn redrive_queues(&self) -> Vec<(&'static str, String, String)> {
        self.dlq_urls
            .iter()
            .filter_map(|(name, dlq)| {
                let (_, source) = self.source_urls.iter().find(|(n, _)| n == name)?;
                Some((*name, dlq.clone(), source.clone()))
            })
            .collect()
    }

    async fn rate_limit(&self, key: &PresentedKey) -> Result<(), Problem> {
        let bucket = format!("api-key:{}", key.key_id());
        match self.limiter.hit(&bucket, &self.key_limit, now_ms()).await {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after_secs }) => {
                let mut problem = Problem::new(
                    429,
                    "rate_limited",
                    "Too many requests",
                    "this key made too many requests; retry after the time in Retry-After",
                );
                problem.retry_after = Some(retry_after_secs.max(1));
                Err(problem)
            }
            // Availability over strictness: a limiter outage does not take the API down.
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; request let through");
                Ok(())
            }
        }
    }
}

fn presented_text(request: &Request) -> &str {
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("")
}

/// The key from `Authorization: Bearer ink_...`, checked for form only.
fn bearer(request: &Request) -> Result<PresentedKey, Problem> {
    let header = request.headers().get("authorization");
    let Some(header) = header else {
        return Err(Problem::new(
            401,
            "missing_key",
            "API key required",
            "send Authorization: Bearer <your key>",
        ));
    };
    let text = header.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
    text.and_then(|t| PresentedKey::parse(t.trim()).ok())
        .ok_or_else(|| refusal(Refused::Malformed))
}

fn refusal(refused: Refused) -> Problem {
    let (code, detail) = match refused {
        Refused::Malformed | Refused::Unknown => ("invalid_key", "the key is not valid"),
        Refused::Revoked => ("key_revoked", "this key was revoked"),
        Refused::Expired => ("key_expired", "this key has expired"),
    };
    Problem::new(401, code, "Unauthorized", detail)
}

/// A JSON body of at most [`MAX_BODY_BYTES`] (an empty body is allowed).
fn json_body(request: &Request) -> Result<&[u8], Problem> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            413,
            "body_too_large",
            "Body too large",
            &format!("at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !body.is_empty() && !is_json {
        return Err(Problem::new(
            415,
            "unsupported_media_type",
            "Unsupported media type",
            "send the body as application/json",
        ));
    }
    Ok(body)
}

pub type LiveApi = TenantApi<
    DynamoRateLimiter,
    SqsQueue,
    SqsDeadLetters,
    SqsExportQueue,
    S3Exports,
    inlet_adapters::aws::DynamoSources,
>;

/// Builds the API with its AWS adapters (clients once per container).
pub async fn build(settings: ApiSettings) -> LiveApi {
    let sdk = sdk_config_for(Patience::Intake).await;
    TenantApi {
        database: Database::new(settings.database),
        keys: settings.keys.clone(),
        limiter: DynamoRateLimiter::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.rate_limit_table,
        ),
        queue: SqsQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.events_queue_url,
            settings.events_queue_max_message_bytes,
        ),
        key_limit: RateLimit {
            requests: settings.key_requests_per_sec.max(1),
            window_secs: 1,
        },
        dead_letters: SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk)),
        dlq_urls: settings.dlq_urls,
        export_queue: SqsExportQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.exports_queue_url,
        ),
        export_files: S3Exports::new(&sdk, settings.exports_bucket),
        source_urls: settings.source_urls,
        sources: inlet_adapters::aws::DynamoSources::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.sources_table,
            settings.keys,
        ),
    }
}

/// The whole of `tenant-api`'s `main`.
pub async fn run() -> Result<(), Error> {
    crate::telemetry::init(crate::telemetry::LogFormat::Json);
    let settings = ApiSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let api = build(settings).await;
    let api = &api;
    lambda_http::run(service_fn(move |request: Request| async move {
        let started = Instant::now();
        let response = api.handle(request).await;
        crate::metrics::emit_invocation(
            &crate::metrics::Stdout,
            "tenant-api",
            &crate::metrics::answered(started.elapsed(), response.status().as_u16()),
        );
        Ok::<_, Error>(response)
    }))
    .await
}
