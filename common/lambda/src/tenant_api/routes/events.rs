//! Events: list, one, replay (one or by filter), the sources that sent them, dead letters.

use super::*;

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
    /// The provider's own id of the event (`evt_...`).
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    event_id: Option<String>,
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

const EVENT_PARAMS: [&str; 9] = [
    "status",
    "provider",
    "type",
    "object_id",
    "event_id",
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
        provider_event_id: params.text("event_id")?,
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
        (status = 404, description = "No such event for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
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
        (status = 404, description = "No such event for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The payload was dropped by retention", body = ProblemDocument, content_type = "application/problem+json"),
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
        (status = 409, description = "A selected payload was dropped by retention", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
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
    let request: ReplayRequest = json_request(
        body,
        "replay request",
        "a JSON object of filters is required ({} replays the oldest events up to limit)",
    )?;
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
    let limit = whole_number(request.limit.as_ref(), 100, 1..=MAX_REPLAY, "limit")?;
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
    /// The tenant the letters belong to (operator lists only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
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
    )
)]
pub async fn list_dead_letters(
    ctx: &Ctx<'_>,
    port: &impl DeadLetterQueue,
    dlq_urls: &[(&'static str, String)],
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let data = dead_letter_groups(port, dlq_urls, Some(&ctx.auth.company)).await?;
    Ok(json(200, &DeadLetterList { data }))
}

/// The dead letters of every queue, read without consuming, grouped by cause; only `company`'s
/// when given (each group then names no company).
pub(super) async fn dead_letter_groups(
    port: &impl DeadLetterQueue,
    dlq_urls: &[(&'static str, String)],
    company: Option<&inlet_core::CompanyId>,
) -> Result<Vec<DeadLetterGroup>, Problem> {
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
        let chosen: Vec<&inlet_domain::ports::DeadMessage> = scanned
            .iter()
            .map(|r| &r.message)
            .filter(|m| company.is_none_or(|c| m.company() == c.as_str()))
            .collect();
        for ((class, code, provider, owner), group) in dead_letters::group(&chosen, now) {
            data.push(DeadLetterGroup {
                queue,
                class,
                code,
                provider,
                company: company.is_none().then_some(owner),
                count: group.count,
                oldest_age_seconds: group.oldest_age_ms.max(0) / 1000,
            });
        }
    }
    Ok(data)
}
