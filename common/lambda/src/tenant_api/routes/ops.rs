//! Who a key is (any valid key), and the operator's routes across tenants (the `operator`
//! scope): every dead letter, redrive with a preview, the platform's health.

use super::*;

/// The key that asked: its tenant and scopes (what a client, the console among them, shows and
/// offers).
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub company_id: String,
    pub key_id: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<&'static str>,
}

/// The key's tenant and scopes.
#[utoipa::path(
    get, path = "/v1/me", tag = "meta",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The key's tenant and scopes", body = Me),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn me(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let tx = begin(connection, ctx).await?;
    tx.commit().await?;
    let auth = ctx.auth;
    Ok(json(
        200,
        &Me {
            company_id: auth.company.to_string(),
            key_id: auth.key_id.clone(),
            scopes: auth.scopes.iter().map(|s| s.as_str()).collect(),
        },
    ))
}

/// Every tenant's dead letters, counted by queue, class, code, provider and company.
#[utoipa::path(
    get, path = "/v1/ops/dead-letters", tag = "operations",
    security(("api_key" = ["operator"])),
    responses(
        (status = 200, description = "The dead letters by cause and company", body = DeadLetterList),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list_all_dead_letters(
    port: &impl DeadLetterQueue,
    dlq_urls: &[(&'static str, String)],
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let data = events::dead_letter_groups(port, dlq_urls, None).await?;
    Ok(json(200, &DeadLetterList { data }))
}

/// Which dead letters to move back; every field narrows, `{}` selects all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// `events` or `reminders`.
    #[schema(schema_with = nullable_queue_schema)]
    pub queue: Option<String>,
    /// A dead-letter code (docs/DEAD_LETTERS.md).
    #[schema(schema_with = nullable_code_schema)]
    pub code: Option<String>,
    #[schema(schema_with = nullable_provider_schema)]
    pub provider: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:-]+$")]
    pub company: Option<String>,
    /// Count and list only; move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn nullable_queue_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::Schema>> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(vec![
            serde_json::Value::from("events"),
            "reminders".into(),
            serde_json::Value::Null,
        ]))
}

fn nullable_code_schema() -> impl Into<utoipa::openapi::RefOr<utoipa::openapi::Schema>> {
    let mut values: Vec<serde_json::Value> = inlet_core::DeadLetterCode::ALL
        .iter()
        .map(|c| c.as_str().into())
        .collect();
    values.push(serde_json::Value::Null);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
}

/// One dead letter a redrive moved (or would move).
#[derive(Debug, Serialize, ToSchema)]
pub struct RedrivenLetter {
    pub queue: &'static str,
    pub message_id: String,
    pub code: String,
    pub provider: String,
    pub company: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveResult {
    pub dry_run: bool,
    /// Moved, or for a dry run that would move.
    pub count: usize,
    pub letters: Vec<RedrivenLetter>,
}

/// The most dead letters one redrive request moves.
pub const MAX_REDRIVE: usize = 1000;

/// Moves matching dead letters back to the queue each came from (copy sent, then the dead
/// letter deleted); with `dry_run`, the preview of what would move. Audited on the operator
/// key's chain.
#[utoipa::path(
    post, path = "/v1/ops/dead-letters/redrive", tag = "operations",
    request_body(content = RedriveRequest, content_type = "application/json", description = "Filters; `{}` selects every dead letter"),
    security(("api_key" = ["operator"])),
    responses(
        (status = 202, description = "Moved (or counted, for a dry run)", body = RedriveResult),
        (status = 400, description = "The body is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn redrive(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    port: &impl DeadLetterQueue,
    queues: &[(&'static str, String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let request: RedriveRequest = json_request(
        body,
        "redrive request",
        "a JSON object of filters is required ({} selects every dead letter)",
    )?;
    if let Some(code) = &request.code {
        if inlet_core::DeadLetterCode::parse(code).is_none() {
            return Err(Problem::bad_body(
                "code: not a dead-letter code (docs/DEAD_LETTERS.md)",
            ));
        }
    }
    if let Some(provider) = &request.provider {
        if Provider::parse(provider).is_none() {
            return Err(Problem::bad_body(&format!(
                "provider: one of {}",
                provider_names().join(", ")
            )));
        }
    }
    if let Some(company) = &request.company {
        if inlet_core::CompanyId::parse(company).is_err() {
            return Err(Problem::bad_body("company: not a company id"));
        }
    }
    let chosen: Vec<_> = queues
        .iter()
        .filter(|(name, _, _)| request.queue.as_deref().is_none_or(|q| q == *name))
        .collect();
    if chosen.is_empty() {
        return Err(Problem::bad_body("queue: events or reminders"));
    }
    let filter = dead_letters::Filter {
        code: request.code.clone(),
        provider: request.provider.clone(),
        company: request.company.clone(),
    };
    // The audit row is written in the transaction that commits after the move: a redrive that
    // cannot be audited (database down) is refused before anything moves.
    let tx = begin(connection, ctx).await?;
    let mut letters = Vec::new();
    for (name, dlq_url, source_url) in chosen {
        let base = source_url.rsplit_once('/').map(|(base, _)| base.to_owned());
        let moved = dead_letters::redrive(
            port,
            dlq_url,
            |m: &inlet_domain::ports::DeadMessage| match m.source_queue() {
                Some(arn) => {
                    let queue = arn.rsplit(':').next()?;
                    base.as_ref().map(|base| format!("{base}/{queue}"))
                }
                None => Some(source_url.clone()),
            },
            &filter,
            dead_letters::RedriveOptions::new(MAX_REDRIVE - letters.len(), request.dry_run),
        )
        .await
        .map_err(|error| {
            tracing::error!(%error, "a dead-letter queue could not be redriven");
            Problem::unavailable()
        })?;
        letters.extend(moved.moved.iter().map(|m| RedrivenLetter {
            queue: name,
            message_id: m.message_id.clone(),
            code: m.code(),
            provider: m.provider().to_owned(),
            company: m.company().to_owned(),
        }));
    }
    if !request.dry_run && !letters.is_empty() {
        let mut by_queue_and_code: std::collections::BTreeMap<String, usize> = Default::default();
        for letter in &letters {
            *by_queue_and_code
                .entry(format!("{}/{}", letter.queue, letter.code))
                .or_default() += 1;
        }
        inlet_domain::audit::record(
            &tx,
            &inlet_domain::audit::Entry {
                company: Some(&ctx.auth.company),
                actor: &Actor::Key(ctx.auth.key_id.clone()),
                action: "dlq.redrive",
                target: request.queue.as_deref().unwrap_or("all"),
                request_id: None,
                details: serde_json::json!({
                    "messages": letters.len(),
                    "by_queue_and_code": by_queue_and_code,
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(json(
        202,
        &RedriveResult {
            dry_run: request.dry_run,
            count: letters.len(),
            letters,
        },
    ))
}

/// The platform's processing figures over one window, every tenant summed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Window {
    pub minutes: i64,
    pub events: i64,
    pub processed: i64,
    pub failed: i64,
    /// failed / processed (0 when nothing was processed).
    pub error_rate: f64,
    /// From received at intake to processed; null when nothing was processed.
    pub p95_processing_ms: Option<f64>,
}

/// One service-level objective, judged over the last 10 minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Slo {
    pub name: &'static str,
    pub objective: String,
    pub value: f64,
    pub breached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueDepth {
    pub queue: &'static str,
    /// Approximate visible messages; null when the queue could not be read.
    pub depth: Option<u64>,
}

/// The platform's health.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub last_hour: Window,
    pub last_10_minutes: Window,
    /// Events received and not processed yet (last hour).
    pub waiting: i64,
    pub oldest_waiting_seconds: f64,
    pub queues: Vec<QueueDepth>,
    pub dead_letter_queues: Vec<QueueDepth>,
    pub slos: Vec<Slo>,
    /// Two or more objectives breached over the last 10 minutes.
    pub degraded: bool,
}

/// Objectives (docs/OPERATIONS.md): processing p95, error rate, oldest waiting event, DLQ.
pub const SLO_P95_MS: f64 = 5_000.0;
pub const SLO_ERROR_RATE: f64 = 0.01;
pub const SLO_OLDEST_WAITING_SECS: f64 = 60.0;

/// Queue depths, processing figures over the last hour and 10 minutes, the objectives and
/// whether the platform is degraded.
#[utoipa::path(
    get, path = "/v1/ops/health", tag = "operations",
    security(("api_key" = ["operator"])),
    responses(
        (status = 200, description = "The platform's health", body = Health),
        (status = 400, description = "A parameter is invalid", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn health(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    port: &impl DeadLetterQueue,
    queues: &[(&'static str, String, String)],
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let tx = begin(connection, ctx).await?;
    let mut windows = Vec::new();
    let mut waiting = (0, 0.0);
    for minutes in [60_i64, 10] {
        let row = tx
            .query_one(
                "SELECT events, processed, failed, waiting, p95_processing_ms, oldest_waiting_ms
                   FROM platform_health(now() - make_interval(mins => $1::int))",
                &[&(minutes as i32)],
            )
            .await?;
        let (processed, failed): (i64, i64) = (row.get("processed"), row.get("failed"));
        if minutes == 60 {
            waiting = (
                row.get::<_, i64>("waiting"),
                row.get::<_, Option<f64>>("oldest_waiting_ms")
                    .unwrap_or(0.0)
                    / 1000.0,
            );
        }
        windows.push(Window {
            minutes,
            events: row.get("events"),
            processed,
            failed,
            error_rate: if processed > 0 {
                failed as f64 / processed as f64
            } else {
                0.0
            },
            p95_processing_ms: row.get("p95_processing_ms"),
        });
    }
    tx.commit().await?;
    let depth = async |url: &str| match port.depth(url).await {
        Ok(depth) => depth,
        Err(error) => {
            tracing::warn!(%error, "a queue's depth could not be read");
            None
        }
    };
    let (mut depths, mut dlq_depths) = (Vec::new(), Vec::new());
    for (name, dlq_url, source_url) in queues {
        depths.push(QueueDepth {
            queue: name,
            depth: depth(source_url).await,
        });
        dlq_depths.push(QueueDepth {
            queue: name,
            depth: depth(dlq_url).await,
        });
    }
    let recent = windows.pop().unwrap_or_else(|| empty_window(10));
    let last_hour = windows.pop().unwrap_or_else(|| empty_window(60));
    let dead: u64 = dlq_depths.iter().filter_map(|d| d.depth).sum();
    let p95 = recent.p95_processing_ms.unwrap_or(0.0);
    let slos = vec![
        Slo {
            name: "processing_p95",
            objective: format!("p95 from intake to processed ≤ {SLO_P95_MS} ms"),
            value: p95,
            breached: p95 > SLO_P95_MS,
        },
        Slo {
            name: "error_rate",
            objective: format!("failed / processed ≤ {} %", SLO_ERROR_RATE * 100.0),
            value: recent.error_rate,
            breached: recent.error_rate > SLO_ERROR_RATE,
        },
        Slo {
            name: "oldest_waiting",
            objective: format!("no event waits longer than {SLO_OLDEST_WAITING_SECS} s"),
            value: waiting.1,
            breached: waiting.1 > SLO_OLDEST_WAITING_SECS,
        },
        Slo {
            name: "dead_letters",
            objective: "the dead-letter queues are empty".into(),
            value: dead as f64,
            breached: dead > 0,
        },
    ];
    let degraded = slos.iter().filter(|s| s.breached).count() >= 2;
    Ok(json(
        200,
        &Health {
            last_hour,
            last_10_minutes: recent,
            waiting: waiting.0,
            oldest_waiting_seconds: waiting.1,
            queues: depths,
            dead_letter_queues: dlq_depths,
            slos,
            degraded,
        },
    ))
}

fn empty_window(minutes: i64) -> Window {
    Window {
        minutes,
        events: 0,
        processed: 0,
        failed: 0,
        error_rate: 0.0,
        p95_processing_ms: None,
    }
}
