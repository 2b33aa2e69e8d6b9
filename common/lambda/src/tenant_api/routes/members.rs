//! Privacy: a member's erasure, and exports as jobs.

use super::*;

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
        (status = 404, description = "No such member for this tenant (or already erased)", body = ProblemDocument, content_type = "application/problem+json"),
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
        (status = 404, description = "No such member for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
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
        (status = 404, description = "No such export for this tenant", body = ProblemDocument, content_type = "application/problem+json"),
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
