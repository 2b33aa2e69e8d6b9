//! Payment recovery: cases opened by failed payments, closed by a later success (recovered) or
//! by cancellation (lost). Closing cancels the reminders not yet sent; what was sent stays, for
//! attribution.

use inlet_postgres::Tx;

use inlet_core::Failure;

/// Reminder offsets when the company has not set `settings.reminder_offsets_hours`.
pub const DEFAULT_OFFSETS_HOURS: [i32; 4] = [0, 24, 72, 168];

/// What a failed payment opens.
pub struct FailedPayment<'a> {
    pub provider: &'a str,
    pub membership: &'a str,
    pub payment: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    /// RFC 3339: when the payment failed; reminders are due from then.
    pub failed_at: &'a str,
}

/// Opens a case and its reminders, unless one is already open for the membership or this payment
/// already opened one (replays). Returns the new case's id.
pub async fn open_case(tx: &Tx<'_>, failed: &FailedPayment<'_>) -> Result<Option<i64>, Failure> {
    // The insert and the settings read are independent: sent together, one round trip.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &failed.provider,
        &failed.membership,
        &failed.payment,
        &failed.amount,
        &failed.currency,
        &failed.failed_at,
    ];
    let opened = tx.query_opt(
            "INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6::text::timestamptz)
             ON CONFLICT DO NOTHING
             RETURNING id",
            &params,
        );
    let settings = tx.query_one(
        "SELECT settings -> 'reminder_offsets_hours' FROM companies WHERE company_id = get_current_company_id()",
        &[],
    );
    let (opened, settings) = tokio::try_join!(opened, settings)?;
    let Some(row) = opened else {
        return Ok(None);
    };
    let case_id: i64 = row.get(0);
    let configured: Option<serde_json::Value> = settings.get(0);
    let offsets: Vec<i32> = configured
        .and_then(|v| serde_json::from_value::<Vec<i32>>(v).ok())
        .filter(|o| !o.is_empty() && o.iter().all(|h| *h >= 0))
        .unwrap_or_else(|| DEFAULT_OFFSETS_HOURS.to_vec());
    tx.execute(
        "INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
         SELECT get_current_company_id(), $1, o, $2::text::timestamptz + make_interval(hours => o)
           FROM unnest($3::int[]) AS o
         ON CONFLICT DO NOTHING",
        &[&case_id, &failed.failed_at, &offsets],
    )
    .await?;
    Ok(Some(case_id))
}

/// How a case ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Recovered,
    Lost,
}

/// Closes the membership's open case, if any, and cancels its pending reminders.
pub async fn close_case(
    tx: &Tx<'_>,
    provider: &str,
    membership: &str,
    closing: Closing,
    payment: Option<&str>,
    at: &str,
) -> Result<Option<i64>, Failure> {
    let status = match closing {
        Closing::Recovered => "recovered",
        Closing::Lost => "lost",
    };
    // One statement: close the case, cancel what has not gone out (an enqueued reminder is
    // cancelled too; the sender re-checks before delivering), and on recovery attribute the
    // conversion to the last variant sent before the payment.
    let closed = tx
        .query_opt(
            "WITH closed AS (
                 UPDATE recovery_cases SET status = $3, closed_at = $4::text::timestamptz, closed_by_payment = $5
                  WHERE company_id = get_current_company_id() AND provider = $1
                    AND membership_external_id = $2 AND status = 'open'
                  RETURNING id, amount_at_risk),
             cancelled AS (
                 UPDATE reminders SET status = 'cancelled'
                  WHERE case_id IN (SELECT id FROM closed) AND status IN ('pending', 'enqueued')),
             attributed AS (
                 INSERT INTO ab_test_conversions (company_id, variant_id, case_id, kind, amount)
                 SELECT get_current_company_id(), last_sent.variant_id, c.id, 'conversion', c.amount_at_risk
                   FROM closed c
                   JOIN LATERAL (SELECT u.variant_id FROM ab_test_usage u
                                  WHERE u.case_id = c.id AND u.sent_at <= $4::text::timestamptz
                                  ORDER BY u.sent_at DESC, u.id DESC LIMIT 1) last_sent ON true
                  WHERE $3 = 'recovered'
                 ON CONFLICT DO NOTHING)
             SELECT id FROM closed",
            &[&provider, &membership, &status, &at, &payment],
        )
        .await?;
    Ok(closed.map(|row| row.get(0)))
}
