//! A tenant managing its own webhook sources (those whose every event is its own): rotate the
//! signing secret, disable. Sources that route by payload (several tenants) are the operator's,
//! through `inlet sources`.

use inlet_domain::ports::SourceAdmin;
use inlet_webhooks::intake::Source;

use super::*;

/// Hours the previous secrets keep verifying after a rotation, by default.
pub const DEFAULT_OVERLAP_HOURS: i64 = 24;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Hours the previous secrets keep verifying (0 to 168; default 24), so the sender can switch.
    #[schema(minimum = 0, maximum = 168, value_type = Option<i64>)]
    pub overlap_hours: Option<serde_json::Number>,
}

/// A new signing secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    pub source_id: String,
    /// The new secret: give it to the provider now; it is never shown again.
    pub secret: String,
    /// When the previous secrets stop verifying (RFC 3339).
    pub previous_valid_until: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceState {
    pub source_id: String,
    pub enabled: bool,
}

/// A source id from the path: what `inlet sources add` accepts.
fn source_id(text: &str) -> Result<&str, Problem> {
    inlet_core::SourceId::parse(text)
        .map(|_| text)
        .map_err(|_| Problem::new(400, "invalid_id", "Invalid id", "not a source id"))
}

/// The source if it is this tenant's own; another tenant's, or one routing by payload, is 404.
async fn own_source(
    sources: &impl SourceAdmin,
    ctx: &Ctx<'_>,
    id: &str,
) -> Result<Source, Problem> {
    let found = sources.fetch(source_id(id)?).await.map_err(|error| {
        tracing::error!(%error, "the sources table could not be read");
        Problem::unavailable()
    })?;
    found
        .filter(|s| s.belongs_to(&ctx.auth.company))
        .ok_or_else(Problem::not_found)
}

async fn save_audited(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    sources: &impl SourceAdmin,
    source: &Source,
    action: &'static str,
) -> Result<(), Problem> {
    // Audited first, in a transaction committed only once the source is saved: a change that
    // cannot be audited is not made.
    let tx = begin(connection, ctx).await?;
    inlet_domain::audit::record(
        &tx,
        &inlet_domain::audit::Entry {
            company: Some(&ctx.auth.company),
            actor: &Actor::Key(ctx.auth.key_id.clone()),
            action,
            target: &source.source_id,
            request_id: None,
            details: serde_json::json!({ "enabled": source.enabled, "secrets": source.secrets.len() }),
        },
    )
    .await?;
    sources.put(source).await.map_err(|error| {
        tracing::error!(%error, "a source could not be saved");
        Problem::unavailable()
    })?;
    tx.commit().await?;
    Ok(())
}

/// Adds a new signing secret (shown once); the previous ones verify until the overlap ends.
#[utoipa::path(
    post, path = "/v1/sources/{id}/rotate", tag = "sources",
    params(("id" = String, Path, description = "The source's id", max_length = 64, pattern = "^[A-Za-z0-9_-]+$")),
    request_body(content = RotateRequest, content_type = "application/json", description = "`{}` keeps 24 hours of overlap"),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "The new secret, shown once", body = Rotated),
        (status = 400, description = "The id or body is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such source of this tenant", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_source(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    sources: &impl SourceAdmin,
    id: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let request: RotateRequest = json_request(
        body,
        "rotation request",
        "a JSON object is required ({} keeps 24 hours of overlap)",
    )?;
    let overlap = whole_number(
        request.overlap_hours.as_ref(),
        DEFAULT_OVERLAP_HOURS,
        0..=168,
        "overlap_hours",
    )?;
    let mut source = own_source(sources, ctx, id).await?;
    let secret = source.provider.generate_secret();
    let now = inlet_core::clock::now_ms();
    let until = source.rotate(
        inlet_webhooks::providers::SigningSecret::new(secret.clone()),
        now,
        overlap * 3_600_000,
    );
    save_audited(connection, ctx, sources, &source, "source.rotate").await?;
    Ok(json(
        200,
        &Rotated {
            source_id: source.source_id.clone(),
            secret,
            previous_valid_until: inlet_core::clock::rfc3339_ms(until).unwrap_or_default(),
        },
    ))
}

/// Stops accepting the source's webhooks (its URL answers 404).
#[utoipa::path(
    post, path = "/v1/sources/{id}/disable", tag = "sources",
    params(("id" = String, Path, description = "The source's id", max_length = 64, pattern = "^[A-Za-z0-9_-]+$")),
    security(("api_key" = ["admin"])),
    responses(
        (status = 200, description = "Disabled", body = SourceState),
        (status = 400, description = "The id is invalid", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such source of this tenant", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn disable_source(
    connection: &mut Connection,
    ctx: &Ctx<'_>,
    sources: &impl SourceAdmin,
    id: &str,
    query: Option<&str>,
) -> Result<Response<Body>, Problem> {
    Params::parse(query, &[])?;
    let mut source = own_source(sources, ctx, id).await?;
    source.enabled = false;
    save_audited(connection, ctx, sources, &source, "source.disable").await?;
    Ok(json(
        200,
        &SourceState {
            source_id: source.source_id,
            enabled: false,
        },
    ))
}
