//! Payment recovery: cases opened by failed payments, closed by a later success (recovered) or
//! by cancellation (lost). Closing cancels the reminders not yet sent; what was sent stays, for
//! attribution.

use inlet_postgres::{params, Plan};

/// Reminder offsets when the company has not set `settings.reminder_offsets_hours`.
pub const DEFAULT_OFFSETS_HOURS: [i32; 4] = [0, 24, 72, 168];

/// What a failed payment opens.
pub struct FailedPayment<'a> {
    pub provider: &'static str,
    pub membership: &'a str,
    pub payment: &'a str,
    pub amount: i64,
    pub currency: &'a str,
    /// RFC 3339: when the payment failed; reminders are due from then.
    pub failed_at: &'a str,
    /// Membership statuses after which a failed payment is not worth chasing (the provider's).
    pub ended: &'static [&'static str],
}

/// Opens a case and its reminders, unless the membership has ended, a case is already open for
/// it, or this payment already opened one (replays). One statement, decided in SQL: the
/// membership's status (an unknown membership does not stop it: its subscription event may
/// simply not have arrived yet) and the company's `reminder_offsets_hours` are read where they
/// are, so nothing waits for an answer before the next statement is sent. Offsets that are not
/// a non-empty list of whole hours >= 0 are replaced by [`DEFAULT_OFFSETS_HOURS`].
pub fn open_case(plan: &mut Plan<'_>, failed: &FailedPayment<'_>) {
    plan.push(
        "WITH opened AS (
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                  amount_at_risk, currency, opened_at)
             SELECT get_current_company_id(), $1::text, $2::text, $3::text, $4::bigint, $5::text,
                    $6::text::timestamptz
              WHERE NOT EXISTS (SELECT 1 FROM memberships m
                                 WHERE m.company_id = get_current_company_id() AND m.provider = $1::text
                                   AND m.external_id = $2::text AND m.status = ANY ($7::text[]))
             ON CONFLICT DO NOTHING
             RETURNING id),
         configured AS (
             SELECT c.settings -> 'reminder_offsets_hours' AS hours
               FROM companies c WHERE c.company_id = get_current_company_id()),
         offsets AS (
             SELECT coalesce(
                 (SELECT ARRAY(SELECT e::text::int
                                 FROM jsonb_array_elements(configured.hours) WITH ORDINALITY AS x(e, n)
                                ORDER BY n)
                    FROM configured
                   WHERE jsonb_typeof(configured.hours) = 'array'
                     AND jsonb_array_length(configured.hours) > 0
                     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(configured.hours) AS e
                                      WHERE e::text !~ '^[0-9]{1,10}$' OR e::text::numeric > 2147483647)),
                 $8::int[]) AS hours)
         INSERT INTO reminders (company_id, case_id, offset_hours, due_at)
         SELECT get_current_company_id(), opened.id, o.hours,
                $6::text::timestamptz + make_interval(hours => o.hours)
           FROM opened, offsets, unnest(offsets.hours) WITH ORDINALITY AS o(hours, n)
          ORDER BY o.n
         ON CONFLICT DO NOTHING",
        params![
            failed.provider,
            failed.membership.to_owned(),
            failed.payment.to_owned(),
            failed.amount,
            failed.currency.to_owned(),
            failed.failed_at.to_owned(),
            failed.ended,
            &DEFAULT_OFFSETS_HOURS[..],
        ],
    );
}

/// How a case ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Recovered,
    Lost,
}

/// Closes the membership's open case, if any, and cancels its pending reminders.
pub fn close_case(
    plan: &mut Plan<'_>,
    provider: &'static str,
    membership: &str,
    closing: Closing,
    payment: Option<&str>,
    at: &str,
) {
    let status = match closing {
        Closing::Recovered => "recovered",
        Closing::Lost => "lost",
    };
    // One statement: close the case, cancel what has not gone out (an enqueued reminder is
    // cancelled too; the sender re-checks before delivering), and on recovery attribute the
    // conversion to the last variant sent before the payment.
    plan.push(
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
        params![
            provider,
            membership.to_owned(),
            status,
            at.to_owned(),
            payment.map(str::to_owned),
        ],
    );
}
