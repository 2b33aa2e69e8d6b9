//! Reports: recovery cases and the A/B test.

use super::*;

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
