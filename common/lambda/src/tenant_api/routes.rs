//! The routes under `/v1/`, each documented where it is written: the OpenAPI document served
//! at `/v1/openapi.json` is generated from these attributes (utoipa), and the route matrix test
//! enumerates the routes from that document.

use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use inlet_core::api_key::Scope;
use inlet_domain::api::{
    self, AbReport, Cursor, EventDetail, EventFilter, EventPage, RecoveryCasePage, SourceList,
    CASE_STATUSES, EVENT_STATUSES,
};
use inlet_domain::audit::Actor;
use inlet_domain::keys::{self, Authenticated};
use inlet_domain::ops::dead_letters;
use inlet_domain::ops::replay::{self, ReplayError, Selection};
use inlet_domain::ports::{DeadLetterQueue, ExportFiles, ExportQueue};
use inlet_domain::privacy::{self, PrivacyError};
use inlet_postgres::{Connection, Tx};
use inlet_webhooks::intake::EventQueue;
use inlet_webhooks::providers::Provider;

use super::problem::{Problem, ProblemDocument};
use super::query::Params;

/// What a handler knows about its request besides its inputs.
pub struct Ctx<'a> {
    pub keys: &'a inlet_core::crypto::KeyRing,
    pub auth: &'a Authenticated,
}

pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The tenant's transaction for a request: the key's company, and its use noted.
async fn begin<'c>(connection: &'c mut Connection, ctx: &Ctx<'_>) -> Result<Tx<'c>, Problem> {
    let (tx, _) = connection.tenant_tx(&ctx.auth.company).await?;
    keys::touch(&tx, &ctx.auth.key_id).await?;
    Ok(tx)
}

fn provider_names() -> Vec<&'static str> {
    Provider::ALL.iter().map(|p| p.as_str()).collect()
}

fn provider_schema() -> impl Into<RefOr<Schema>> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(provider_names()))
}

/// In a JSON body a filter may also be null (the same as absent).
fn nullable_provider_schema() -> impl Into<RefOr<Schema>> {
    let mut values: Vec<serde_json::Value> = provider_names().into_iter().map(Into::into).collect();
    values.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
}

/// Filters of `GET /v1/events`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventQuery {
    /// The ledger status.
    #[param(inline, value_type = Option<EventStatus>)]
    status: Option<String>,
    #[param(schema_with = provider_schema)]
    provider: Option<String>,
    /// The provider's event type, e.g. `invoice.payment_failed`.
    #[param(
        rename = "type",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    event_type: Option<String>,
    /// The provider's id of the object the event is about.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    object_id: Option<String>,
    /// Received at or after (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Received before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(max_length = 512)]
    cursor: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EventStatus {
    Received,
    Completed,
    SkippedStale,
    Ignored,
    Failed,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CaseStatus {
    Open,
    Recovered,
    Lost,
}

const EVENT_PARAMS: [&str; 8] = [
    "status",
    "provider",
    "type",
    "object_id",
    "since",
    "until",
    "cursor",
    "limit",
];

/// List the tenant's events, newest first.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventQuery),
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_events(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let params = Params::parse(query, &EVENT_PARAMS)?;
    let providers = provider_names();
    let filter = EventFilter {
        status: params.one_of("status", &EVENT_STATUSES)?,
        provider: params.one_of("provider", &providers)?,
        event_type: params.text("type")?,
        object_id: params.text("object_id")?,
        since: params.time("since")?,
        until: params.time("until")?,
    };
    let limit = params.limit()?;
    let cursor = cursor(&params, ctx, "events")?;
    let tx = begin(connection, ctx).await?;
    let page = api::list_events(
        &tx,
        ctx.keys,
        &ctx.auth.company,
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await?;
    tx.commit().await?;
    Ok(json(200, &page))
}

fn cursor(params: &Params, ctx: &Ctx<'_>, list: &str) -> Result<Option<Cursor>, Problem> {
    params
        .raw("cursor")
        .map(|text| {
            Cursor::open(text, ctx.keys, &ctx.auth.company, list).map_err(|_| {
                Problem::new(
                    400,
                    "invalid_cursor",
                    "Invalid cursor",
                    "pass back the next_cursor of a page of this list, unchanged",
                )
            })
        })
        .transpose()
}

/// An event id from the path: a positive 64-bit integer.
pub fn event_id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Problem::new(
                400,
                "invalid_id",
                "Invalid id",
                "an event id is a positive integer",
            )
        })
}

/// One event: its ledger row and `payload_min`; its payload as received with
/// `include=payload` and the `payloads:read` scope.
#[utoipa::path(
    get, path = "/v1/events/{id}", tag = "events",
    params(
        ("id" = i64, Path, minimum = 1, description = "The event's ledger id"),
        ("include" = Option<String>, Query, description = "`payload`: the decrypted payload (needs payloads:read)", pattern = "^payload$"),
    ),
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        (status = 400, description = "The id or a parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such event for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn get_event(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let id = event_id(id)?;
    let params = Params::parse(query, &["include"])?;
    let with_payload = params.one_of("include", &["payload"])?.is_some();
    if with_payload && !inlet_core::api_key::allows(&ctx.auth.scopes, Scope::PayloadsRead) {
        return Err(missing_scope(Scope::PayloadsRead));
    }
    let tx = begin(connection, ctx).await?;
    let detail = api::get_event(&tx, ctx.keys, &ctx.auth.company, id, with_payload).await?;
    tx.commit().await?;
    match detail {
        Some(detail) => Ok(json(200, &detail)),
        None => Err(Problem::not_found()),
    }
}

pub fn missing_scope(scope: Scope) -> Problem {
    Problem::new(
        403,
        "missing_scope",
        "Missing scope",
        &format!("this needs a key with the {scope} scope"),
    )
}

/// What a replay did (or, as a dry run, would do).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResult {
    /// Events that matched.
    pub selected: usize,
    /// Events sent to be processed again (0 for a dry run).
    pub enqueued: usize,
    pub dry_run: bool,
}

fn replay_problem(error: ReplayError) -> Problem {
    match error {
        ReplayError::PayloadDropped(count, _) => Problem::new(
            409,
            "payload_dropped",
            "Payload no longer stored",
            &format!("{count} selected event(s) no longer have their payload (retention); narrow the selection"),
        ),
        ReplayError::Sealed(..) | ReplayError::Queue(_) => {
            tracing::error!(%error, "replay failed");
            Problem::unavailable()
        }
        ReplayError::Database(failure) => Problem::from(failure),
    }
}

/// Process one event again (its projection re-applied; exactly once in effect).
#[utoipa::path(
    post, path = "/v1/events/{id}/replay", tag = "events",
    params(
        ("id" = i64, Path, minimum = 1, description = "The event's ledger id"),
        ("dry_run" = Option<bool>, Query, description = "Count only; send nothing"),
    ),
    security(("api_key" = ["events:replay"])),
    responses(
        (status = 202, description = "Sent to be processed again", body = ReplayResult),
        (status = 400, description = "The id or a parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such event for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The payload was dropped by retention", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn replay_event(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    queue: &impl EventQueue,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let id = event_id(id)?;
    let params = Params::parse(query, &["dry_run"])?;
    let dry_run = params.flag("dry_run")?;
    let selection = Selection {
        company: Some(ctx.auth.company.to_string()),
        row_id: Some(id),
        limit: 1,
        ..Selection::default()
    };
    let actor = Actor::Key(ctx.auth.key_id.clone());
    let done = replay::replay(connection, &actor, queue, ctx.keys, &selection, dry_run)
        .await
        .map_err(replay_problem)?;
    if done.selected.is_empty() {
        return Err(Problem::not_found());
    }
    Ok(json(
        202,
        &ReplayResult {
            selected: done.selected.len(),
            enqueued: done.enqueued,
            dry_run,
        },
    ))
}

/// Which events to replay: every field narrows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    #[schema(value_type = Option<EventStatus>)]
    pub status: Option<String>,
    #[schema(schema_with = nullable_provider_schema)]
    pub provider: Option<String>,
    #[serde(rename = "type")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub event_type: Option<String>,
    /// RFC 3339, inclusive.
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    #[schema(format = DateTime)]
    pub until: Option<String>,
    /// At most this many, oldest first (1 to 1000; default 100).
    #[schema(minimum = 1, maximum = 1000)]
    #[schema(value_type = Option<i64>)]
    pub limit: Option<serde_json::Number>,
    /// Count only; send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The most events one replay request sends.
pub const MAX_REPLAY: i64 = 1000;

/// Process again every event matching a filter (oldest first, up to `limit`).
#[utoipa::path(
    post, path = "/v1/events/replay", tag = "events",
    request_body(content = ReplayRequest, content_type = "application/json", description = "Filters; `{}` selects the oldest events up to `limit`"),
    security(("api_key" = ["events:replay"])),
    responses(
        (status = 202, description = "Sent to be processed again (or counted, for a dry run)", body = ReplayResult),
        (status = 400, description = "The body is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A selected payload was dropped by retention", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn replay_events(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    queue: &impl EventQueue,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_body(
            "a JSON object of filters is required ({} replays the oldest events up to limit)",
        ));
    }
    let request: ReplayRequest = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_body(&format!(
            "not a replay request: {}",
            e.to_string().chars().take(120).collect::<String>()
        ))
    })?;
    let check = |name: &str, value: &Option<String>, allowed: &[&str]| match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(Problem::bad_body(&format!(
            "{name}: one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    };
    check("status", &request.status, &EVENT_STATUSES)?;
    check("provider", &request.provider, &provider_names())?;
    if let Some(t) = &request.event_type {
        if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
            return Err(Problem::bad_body("type: 1 to 200 characters"));
        }
    }
    let time = |name: &str, value: &Option<String>| -> Result<Option<String>, Problem> {
        let Some(text) = value else { return Ok(None) };
        let query = format!(
            "{name}={}",
            form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
        );
        Params::parse(Some(&query), &[name])?
            .time(name)
            .map_err(|p| Problem::bad_body(&p.detail))
    };
    let since = time("since", &request.since)?;
    let until = time("until", &request.until)?;
    // JSON Schema's integers include 88.0.
    let limit = match &request.limit {
        None => 100,
        Some(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .unwrap_or(-1),
    };
    if !(1..=MAX_REPLAY).contains(&limit) {
        return Err(Problem::bad_body(&format!("limit: 1 to {MAX_REPLAY}")));
    }
    let selection = Selection {
        company: Some(ctx.auth.company.to_string()),
        status: request.status,
        provider: request.provider,
        event_type: request.event_type,
        since,
        until,
        limit,
        ..Selection::default()
    };
    let actor = Actor::Key(ctx.auth.key_id.clone());
    let done = replay::replay(
        connection,
        &actor,
        queue,
        ctx.keys,
        &selection,
        request.dry_run,
    )
    .await
    .map_err(replay_problem)?;
    Ok(json(
        202,
        &ReplayResult {
            selected: done.selected.len(),
            enqueued: done.enqueued,
            dry_run: request.dry_run,
        },
    ))
}

/// The sources that delivered this tenant's events, with the last event received.
#[utoipa::path(
    get, path = "/v1/sources", tag = "sources",
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "The sources", body = SourceList),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_sources(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let tx = begin(connection, ctx).await?;
    let sources = api::list_sources(&tx).await?;
    tx.commit().await?;
    Ok(json(200, &sources))
}

/// Payment-recovery cases, newest first.
#[utoipa::path(
    get, path = "/v1/recovery/cases", tag = "recovery",
    params(
        ("status" = Option<CaseStatus>, Query, description = "open, recovered or lost"),
        ("cursor" = Option<String>, Query, max_length = 512, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100),
    ),
    security(("api_key" = ["reports:read"])),
    responses(
        (status = 200, description = "A page of cases", body = RecoveryCasePage),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_cases(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let params = Params::parse(query, &["status", "cursor", "limit"])?;
    let status = params.one_of("status", &CASE_STATUSES)?;
    let limit = params.limit()?;
    let cursor = cursor(&params, ctx, "cases")?;
    let tx = begin(connection, ctx).await?;
    let page = api::list_cases(
        &tx,
        ctx.keys,
        &ctx.auth.company,
        status.as_deref(),
        cursor.as_ref(),
        limit,
    )
    .await?;
    tx.commit().await?;
    Ok(json(200, &page))
}

/// The reminder A/B test: each variant's sends, clicks, conversions and revenue, and the
/// current best variant.
#[utoipa::path(
    get, path = "/v1/reports/ab", tag = "reports",
    security(("api_key" = ["reports:read"])),
    responses(
        (status = 200, description = "The A/B figures", body = AbReport),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn ab_report(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let tx = begin(connection, ctx).await?;
    let report = api::ab_report(&tx).await?;
    tx.commit().await?;
    Ok(json(200, &report))
}

/// A member id from the path: a provider id (`cus_...`, `user_...`).
pub fn member_id(text: &str) -> Result<&str, Problem> {
    let ok = (1..=200).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    ok.then_some(text).ok_or_else(|| {
        Problem::new(
            400,
            "invalid_id",
            "Invalid id",
            "a member id is 1 to 200 of A-Z a-z 0-9 _ . : @ -",
        )
    })
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureResult {
    /// The `privacy_requests` row that records it.
    pub request_id: i64,
    /// Rows changed, by kind (events whose payloads were dropped, ids replaced, ...).
    #[schema(value_type = Object)]
    pub erased: std::collections::BTreeMap<&'static str, u64>,
    /// Dead letters naming the member, deleted from the dead-letter queues.
    pub dead_letters_deleted: usize,
}

/// Erase a member everywhere: their email and name, the payloads of the events that name them,
/// their provider ids (replaced by pseudonyms), and dead letters naming them. The tenant's
/// aggregates (A/B counts, amounts recovered) stay. 404 once nothing is left to erase.
#[utoipa::path(
    delete, path = "/v1/members/{id}", tag = "privacy",
    params(("id" = String, Path, min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9_.:@-]+$", description = "The member's provider id, e.g. cus_...")),
    security(("api_key" = ["privacy:delete"])),
    responses(
        (status = 200, description = "Erased", body = ErasureResult),
        (status = 400, description = "The id is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such member for this tenant (or already erased)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn erase_member(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    dead_letters: &impl DeadLetterQueue,
    dlq_urls: &[(&'static str, String)],
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let member = member_id(id)?;
    Params::parse(query, &[])?;
    let actor = Actor::Key(ctx.auth.key_id.clone());
    let erased = privacy::erase(connection, ctx.keys, &actor, &ctx.auth.company, member)
        .await
        .map_err(privacy_problem)?;
    if erased.needles.is_empty() {
        return Err(Problem::not_found());
    }
    let mut deleted = 0;
    for (_, url) in dlq_urls {
        let matched = dead_letters::delete_matching(
            dead_letters,
            url,
            |m| dead_letters::mentions(m, &erased.needles),
            false,
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "dead letters could not be searched for an erased member");
            Problem::unavailable()
        })?;
        deleted += matched.len();
    }
    Ok(json(
        200,
        &ErasureResult {
            request_id: erased.request_id,
            erased: erased.counts,
            dead_letters_deleted: deleted,
        },
    ))
}

/// An export request's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportStatus {
    /// The export's id (for `GET /v1/exports/{id}`).
    pub id: i64,
    /// pending, completed, not_found or failed.
    pub status: String,
    /// When completed: a link to the NDJSON file, valid for `url_expires_in` seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_expires_in: Option<u64>,
    /// What the export holds, by kind (when completed).
    #[schema(value_type = Object)]
    pub counts: serde_json::Value,
}

/// How long an export link works.
pub const EXPORT_LINK_SECS: u64 = 900;

/// Export everything Inlet holds about a member (decrypted) as NDJSON. The export is a job:
/// the answer is its id; `GET /v1/exports/{id}` gives its state and, once done, a link.
#[utoipa::path(
    post, path = "/v1/members/{id}/export", tag = "privacy",
    params(("id" = String, Path, min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9_.:@-]+$", description = "The member's provider id, e.g. cus_...")),
    security(("api_key" = ["privacy:export"])),
    responses(
        (status = 202, description = "Queued", body = ExportStatus),
        (status = 400, description = "The id is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such member for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn request_export(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    queue: &impl ExportQueue,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let member = member_id(id)?;
    Params::parse(query, &[])?;
    let actor = Actor::Key(ctx.auth.key_id.clone());
    let request_id =
        privacy::request_export(connection, ctx.keys, &actor, &ctx.auth.company, member)
            .await
            .map_err(privacy_problem)?;
    let job = privacy::ExportMessage {
        company_id: ctx.auth.company.to_string(),
        request_id,
    };
    if let Err(error) = queue.send(&job).await {
        // The request stays pending; a retry of this call makes another.
        tracing::error!(%error, request_id, "an export could not be queued");
        let finish = privacy::finish_export(
            connection,
            &actor,
            &ctx.auth.company,
            request_id,
            Err("not_queued"),
        )
        .await;
        if let Err(failure) = finish {
            tracing::error!(
                ?failure,
                request_id,
                "the unqueued export could not be marked failed"
            );
        }
        return Err(Problem::unavailable());
    }
    Ok(json(
        202,
        &ExportStatus {
            id: request_id,
            status: "pending".into(),
            url: None,
            url_expires_in: None,
            counts: serde_json::json!({}),
        },
    ))
}

fn privacy_problem(error: PrivacyError) -> Problem {
    match error {
        PrivacyError::NotFound(_) => Problem::not_found(),
        PrivacyError::BadMemberId => Problem::new(
            400,
            "invalid_id",
            "Invalid id",
            "a member id is 1 to 200 characters",
        ),
        PrivacyError::Write(_) => Problem::unavailable(),
        PrivacyError::Database(failure) => Problem::from(failure),
    }
}

/// An export's state; once completed, a short-lived link to its file.
#[utoipa::path(
    get, path = "/v1/exports/{id}", tag = "privacy",
    params(("id" = i64, Path, minimum = 1, description = "The export's id")),
    security(("api_key" = ["privacy:export"])),
    responses(
        (status = 200, description = "The export", body = ExportStatus),
        (status = 400, description = "The id is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such export for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn get_export(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    files: &impl ExportFiles,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    let id = event_id(id)?;
    Params::parse(query, &[])?;
    let tx = begin(connection, ctx).await?;
    let job = privacy::export_job(&tx, id).await?;
    tx.commit().await?;
    let Some(job) = job else {
        return Err(Problem::not_found());
    };
    let url = match (&job.status[..], &job.object_key) {
        ("completed", Some(key)) => Some(
            files
                .presigned_get(key, std::time::Duration::from_secs(EXPORT_LINK_SECS))
                .await
                .map_err(|error| {
                    tracing::error!(%error, "presigning an export failed");
                    Problem::unavailable()
                })?,
        ),
        _ => None,
    };
    Ok(json(
        200,
        &ExportStatus {
            id,
            status: job.status,
            url_expires_in: url.as_ref().map(|_| EXPORT_LINK_SECS),
            url,
            counts: job.counts,
        },
    ))
}

/// This tenant's dead letters of one kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterGroup {
    /// `events` or `reminders`.
    pub queue: &'static str,
    /// permanent or transient.
    pub class: String,
    /// The stable code (docs/DEAD_LETTERS.md), e.g. `unknown_tenant`, `retries_exhausted`.
    pub code: String,
    pub provider: String,
    pub count: usize,
    pub oldest_age_seconds: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetterGroup>,
}

/// This tenant's dead letters, counted by queue, class, code and provider.
#[utoipa::path(
    get, path = "/v1/dead-letters", tag = "events",
    security(("api_key" = ["events:read"])),
    responses(
        (status = 200, description = "The dead letters by cause", body = DeadLetterList),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "No valid key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The key lacks the scope", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Try again shortly", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_dead_letters(
    ctx: &Ctx<'_>,
    port: &impl DeadLetterQueue,
    dlq_urls: &[(&'static str, String)],
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let now = inlet_core::clock::now_ms();
    let mut data = Vec::new();
    for (queue, url) in dlq_urls {
        let unavailable = |error: inlet_core::StoreError| {
            tracing::error!(%error, "a dead-letter queue could not be read");
            Problem::unavailable()
        };
        let scanned = dead_letters::scan(port, url).await.map_err(unavailable)?;
        dead_letters::release(port, url, &scanned)
            .await
            .map_err(unavailable)?;
        let mine: Vec<&inlet_domain::ports::DeadMessage> = scanned
            .iter()
            .map(|r| &r.message)
            .filter(|m| m.company() == ctx.auth.company.as_str())
            .collect();
        for ((class, code, provider, _), group) in dead_letters::group(&mine, now) {
            data.push(DeadLetterGroup {
                queue,
                class,
                code,
                provider,
                count: group.count,
                oldest_age_seconds: group.oldest_age_ms.max(0) / 1000,
            });
        }
    }
    Ok(json(200, &DeadLetterList { data }))
}

/// This document.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub fn openapi_document() -> Response<Body> {
    json(200, &ApiDoc::openapi())
}

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ink_<key id>_<secret>")
                    .description(Some(
                        "A tenant API key (`inlet keys create`). The scopes listed on each \
                         operation are the roles it needs; `admin` allows every operation.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Inlet tenant API",
        version = "1",
        description = "Read a tenant's events, sources, recovery cases and A/B results; replay events. \
                       Every request is authenticated with a tenant API key and sees that tenant's data only."
    ),
    paths(
        list_events,
        get_event,
        replay_event,
        replay_events,
        list_sources,
        list_cases,
        ab_report,
        erase_member,
        list_dead_letters,
        request_export,
        get_export,
        openapi_document
    ),
    components(schemas(ProblemDocument, EventStatus, CaseStatus)),
    modifiers(&BearerKey)
)]
pub struct ApiDoc;
