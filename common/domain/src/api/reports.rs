//! The tenant's reports: recovery cases (with their reminders and totals) and the A/B figures
//! (per variant, per day, the best variant and the allocation).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use inlet_core::crypto::KeyRing;
use inlet_core::{CompanyId, Failure};
use inlet_postgres::Tx;

use super::{paginate, Cursor, MAX_PAGE};

/// A payment-recovery case.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecoveryCase {
    pub id: i64,
    pub provider: String,
    /// open, recovered or lost.
    pub status: String,
    /// In the currency's minor unit.
    pub amount_at_risk: i64,
    pub currency: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// Reminders sent for this case so far.
    pub reminders_sent: i64,
    /// Every reminder of the case, in due order, with the variant it carried once sent.
    pub reminders: Vec<CaseReminder>,
}

/// One reminder of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CaseReminder {
    /// When it was sent, or while unsent when it is due.
    pub at: String,
    /// pending, enqueued, sent, cancelled or failed.
    pub status: String,
    /// webhook or email, once sent.
    pub channel: Option<String>,
    /// The A/B variant's name, once sent.
    pub variant: Option<String>,
}

/// The tenant's cases of one status and currency, all pages together.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CaseTotal {
    pub status: String,
    pub currency: String,
    pub cases: i64,
    /// Summed amount at risk (for recovered cases: recovered), minor unit.
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecoveryCasePage {
    pub data: Vec<RecoveryCase>,
    pub next_cursor: Option<String>,
    /// Counts and amounts by status and currency over every case (not only this page).
    pub totals: Vec<CaseTotal>,
}

pub const CASE_STATUSES: [&str; 3] = ["open", "recovered", "lost"];

/// A page of the tenant's recovery cases, newest first.
pub async fn list_cases(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    status: Option<&str>,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<RecoveryCasePage, Failure> {
    const SQL: &str = concat!(
        "SELECT c.id, c.provider, c.status, c.amount_at_risk, c.currency, ",
        rfc3339!("c.opened_at"), " AS opened_at, ",
        rfc3339!("c.closed_at"), " AS closed_at,
                (SELECT count(*) FROM reminders r WHERE r.case_id = c.id AND r.status = 'sent') AS reminders_sent,
                (SELECT coalesce(jsonb_agg(jsonb_build_object(
                            'at', ", rfc3339!("coalesce(u.sent_at, r.due_at)"), ",
                            'status', r.status, 'channel', v.channel, 'variant', v.name)
                          ORDER BY r.due_at), '[]'::jsonb)
                   FROM reminders r
                   LEFT JOIN ab_test_usage u ON u.reminder_id = r.id
                   LEFT JOIN ab_test_variants v ON v.id = u.variant_id
                  WHERE r.case_id = c.id) AS reminders,
                (extract(epoch FROM c.opened_at) * 1000000)::bigint AS opened_us
           FROM recovery_cases c
          WHERE c.company_id = get_current_company_id()
            AND ($1::text IS NULL OR c.status = $1)
            AND ($2::bigint IS NULL
                 OR (c.opened_at, c.id) < ('epoch'::timestamptz + $2 * interval '1 microsecond', $3))
          ORDER BY c.opened_at DESC, c.id DESC
          LIMIT $4"
    );
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = tx
        .query(
            SQL,
            &[
                &status,
                &after.map(|c| c.at_micros),
                &after.map(|c| c.id).unwrap_or(0),
                &(limit + 1),
            ],
        )
        .await?;
    let (page, next_cursor) = paginate(&rows, limit, "opened_us", keys, company, "cases");
    let totals = tx
        .query(
            "SELECT status, currency, count(*) AS cases, sum(amount_at_risk)::bigint AS amount
               FROM recovery_cases WHERE company_id = get_current_company_id()
              GROUP BY status, currency ORDER BY status, currency",
            &[],
        )
        .await?
        .iter()
        .map(|row| CaseTotal {
            status: row.get("status"),
            currency: row.get("currency"),
            cases: row.get("cases"),
            amount: row.get("amount"),
        })
        .collect();
    Ok(RecoveryCasePage {
        totals,
        data: page
            .into_iter()
            .map(|row| RecoveryCase {
                id: row.get("id"),
                provider: row.get("provider"),
                status: row.get("status"),
                amount_at_risk: row.get("amount_at_risk"),
                currency: row.get("currency"),
                opened_at: row.get("opened_at"),
                closed_at: row.get("closed_at"),
                reminders_sent: row.get("reminders_sent"),
                reminders: serde_json::from_value(row.get::<_, Value>("reminders"))
                    .unwrap_or_default(),
            })
            .collect(),
        next_cursor,
    })
}

/// One reminder variant's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VariantPerformance {
    pub variant_id: i64,
    /// webhook or email.
    pub channel: String,
    pub name: String,
    pub active: bool,
    /// Its relative share when the company allocates by weight.
    pub weight: f64,
    pub sends: i64,
    pub clicks: i64,
    pub ctr: f64,
    pub conversions: i64,
    pub conversion_rate: f64,
    /// In the cases' minor currency unit, summed.
    pub revenue_recovered: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AbReport {
    pub variants: Vec<VariantPerformance>,
    /// The active variant with the best conversion rate among those sent at least
    /// `min_sends` times; null while none has enough data.
    pub best_variant_id: Option<i64>,
    pub min_sends: i32,
    /// How new reminders choose a variant: `weighted` (by each variant's weight) or
    /// `thompson` (Thompson sampling on conversions), the company's `ab_allocation` setting.
    pub allocation: String,
    /// Sends and conversions per variant and UTC day, the last 30 days, oldest first (days
    /// without either are absent).
    pub daily: Vec<VariantDay>,
}

/// One variant's figures on one day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VariantDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub variant_id: i64,
    pub sends: i64,
    pub conversions: i64,
}

/// Sends at which a variant's conversion rate counts for "best".
pub const AB_MIN_SENDS: i32 = 100;

/// The A/B figures of every variant and the current best.
pub async fn ab_report(tx: &Tx<'_>) -> Result<AbReport, Failure> {
    let rows = tx
        .query(
            "SELECT p.variant_id, p.channel, p.name, v.active, v.weight::float8 AS weight, p.sends, p.clicks, p.ctr::float8 AS ctr,
                    p.conversions, p.conversion_rate::float8 AS conversion_rate,
                    p.revenue_recovered::bigint AS revenue_recovered
               FROM ab_test_performance p JOIN ab_test_variants v ON v.id = p.variant_id
              WHERE p.company_id = get_current_company_id()
              ORDER BY p.channel, p.variant_id",
            &[],
        )
        .await?;
    let best: Option<i64> = tx
        .query_one(
            "SELECT get_best_ab_variant(get_current_company_id(), $1)",
            &[&AB_MIN_SENDS],
        )
        .await?
        .get(0);
    let daily = tx
        .query(
            "WITH sends AS (
                 SELECT variant_id, (sent_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
                   FROM ab_test_usage
                  WHERE company_id = get_current_company_id() AND sent_at >= now() - interval '30 days'
                  GROUP BY 1, 2),
             conversions AS (
                 SELECT variant_id, (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
                   FROM ab_test_conversions
                  WHERE company_id = get_current_company_id() AND kind = 'conversion'
                    AND created_at >= now() - interval '30 days'
                  GROUP BY 1, 2)
             SELECT to_char(coalesce(s.day, c.day), 'YYYY-MM-DD') AS day,
                    coalesce(s.variant_id, c.variant_id) AS variant_id,
                    coalesce(s.n, 0) AS sends, coalesce(c.n, 0) AS conversions
               FROM sends s FULL JOIN conversions c ON c.variant_id = s.variant_id AND c.day = s.day
              ORDER BY 1, 2",
            &[],
        )
        .await?
        .iter()
        .map(|row| VariantDay {
            day: row.get("day"),
            variant_id: row.get("variant_id"),
            sends: row.get("sends"),
            conversions: row.get("conversions"),
        })
        .collect();
    let settings: Value = tx
        .query_opt(
            "SELECT settings FROM companies WHERE company_id = get_current_company_id()",
            &[],
        )
        .await?
        .map(|row| row.get(0))
        .unwrap_or(Value::Null);
    Ok(AbReport {
        variants: rows
            .iter()
            .map(|row| VariantPerformance {
                variant_id: row.get("variant_id"),
                channel: row.get("channel"),
                name: row.get("name"),
                active: row.get("active"),
                weight: row.get("weight"),
                sends: row.get("sends"),
                clicks: row.get("clicks"),
                ctr: row.get("ctr"),
                conversions: row.get("conversions"),
                conversion_rate: row.get("conversion_rate"),
                revenue_recovered: row.get("revenue_recovered"),
            })
            .collect(),
        best_variant_id: best,
        min_sends: AB_MIN_SENDS,
        allocation: match crate::reminders::ab::Allocation::from_settings(&settings) {
            crate::reminders::ab::Allocation::Thompson => "thompson".into(),
            crate::reminders::ab::Allocation::Weighted => "weighted".into(),
        },
        daily,
    })
}
