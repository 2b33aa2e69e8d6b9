//! What every provider's projections share: reading fields from payloads, and members.

use inlet_postgres::{params, Plan};
use serde_json::Value;
use sha2::{Digest, Sha256};

use inlet_core::crypto::context;
use inlet_core::{DeadLetterCode, Failure};

/// A non-empty string at `pointer`.
pub(crate) fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// As [`text`], or a permanent failure naming the field.
pub(crate) fn required<'v>(value: &'v Value, pointer: &str) -> Result<&'v str, Failure> {
    text(value, pointer).ok_or_else(|| {
        Failure::permanent(
            DeadLetterCode::ProjectionRejected,
            format!("payload without {pointer}"),
        )
    })
}

/// SHA-256 of the trimmed, lower-cased address: lookups without keeping the address.
pub fn email_hash(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// What a provider tells about a member: both kept only sealed (the email also as a hash).
#[derive(Debug, Clone, Copy, Default)]
pub struct Contact<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Creates or refreshes a member. Safe against a concurrent writer (another consumer, or the
/// application creating the same user itself): the primary key decides, nobody errors. The
/// email is kept as a hash for lookups and sealed for the reminder email channel.
pub fn upsert_member<'e>(
    plan: &mut Plan<'e>,
    event: &'e crate::ledger::Event<'e>,
    provider: &'static str,
    external_id: &'e str,
    contact: Contact<'_>,
) {
    let company = &event.envelope.meta.company_id;
    let seal = |value: Option<&str>, context: Vec<u8>| {
        value
            .map(|v| event.keys.seal_bytes(v.as_bytes(), &context))
            .map_or((None, None), |(k, b)| (Some(k), Some(b)))
    };
    let clean = |v: Option<&'_ str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (email, name) = (clean(contact.email), clean(contact.name));
    let (email_key, email_enc) = seal(
        email.as_deref(),
        context::member_email(company, provider, external_id),
    );
    let (name_key, name_enc) = seal(
        name.as_deref(),
        context::member_name(company, provider, external_id),
    );
    plan.push(
        "INSERT INTO members (company_id, provider, external_id, email_hash, email_enc, email_key_id,
             name_enc, name_key_id)
         VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (company_id, provider, external_id)
         DO UPDATE SET email_hash = coalesce(EXCLUDED.email_hash, members.email_hash),
                       email_enc = coalesce(EXCLUDED.email_enc, members.email_enc),
                       email_key_id = coalesce(EXCLUDED.email_key_id, members.email_key_id),
                       name_enc = coalesce(EXCLUDED.name_enc, members.name_enc),
                       name_key_id = coalesce(EXCLUDED.name_key_id, members.name_key_id),
                       status = 'active'",
        params![provider, external_id, email.as_deref().map(email_hash), email_enc, email_key, name_enc, name_key],
    );
}

/// Marks a member deleted (creating the row if the deletion is the first event seen).
pub fn delete_member<'e>(plan: &mut Plan<'e>, provider: &'static str, external_id: &'e str) {
    plan.push(
        "INSERT INTO members (company_id, provider, external_id, status)
         VALUES (get_current_company_id(), $1, $2, 'deleted')
         ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = 'deleted', email_hash = NULL,
             email_enc = NULL, email_key_id = NULL, name_enc = NULL, name_key_id = NULL",
        params![provider, external_id],
    );
}

/// Creates or updates a membership.
pub struct MembershipState<'a> {
    pub provider: &'static str,
    pub external_id: &'a str,
    pub member: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub status: &'a str,
    /// RFC 3339.
    pub current_period_end: Option<&'a str>,
}

pub fn upsert_membership(plan: &mut Plan<'_>, state: &MembershipState<'_>) {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    plan.push(
        "INSERT INTO memberships (company_id, provider, external_id, member_external_id, plan, status, current_period_end)
         VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6::text::timestamptz)
         ON CONFLICT (company_id, provider, external_id) DO UPDATE
            SET member_external_id = coalesce(EXCLUDED.member_external_id, memberships.member_external_id),
                plan = coalesce(EXCLUDED.plan, memberships.plan),
                status = EXCLUDED.status,
                current_period_end = coalesce(EXCLUDED.current_period_end, memberships.current_period_end)",
        params![
            state.provider,
            state.external_id.to_owned(),
            owned(state.member),
            owned(state.plan),
            state.status.to_owned(),
            owned(state.current_period_end),
        ],
    );
}

/// A payment as the projections record it.
pub struct PaymentRecord<'a> {
    pub provider: &'static str,
    pub external_id: &'a str,
    pub membership: Option<&'a str>,
    pub member: Option<&'a str>,
    pub paid: bool,
    /// Minor units.
    pub amount: i64,
    pub currency: &'a str,
    pub failure_reason: Option<&'a str>,
    /// RFC 3339.
    pub occurred_at: &'a str,
}

pub fn upsert_payment(plan: &mut Plan<'_>, payment: &PaymentRecord<'_>) {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    plan.push(
        "INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id,
             status, amount, currency, failure_reason, occurred_at)
         VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9::text::timestamptz)
         ON CONFLICT (company_id, provider, external_id) DO UPDATE
            SET status = EXCLUDED.status, amount = EXCLUDED.amount, failure_reason = EXCLUDED.failure_reason,
                occurred_at = EXCLUDED.occurred_at",
        params![
            payment.provider,
            payment.external_id.to_owned(),
            owned(payment.membership),
            owned(payment.member),
            if payment.paid { "paid" } else { "failed" },
            payment.amount,
            payment.currency.to_owned(),
            owned(payment.failure_reason),
            payment.occurred_at.to_owned(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_hashes_ignore_case_and_surrounding_space() {
        assert_eq!(
            email_hash(" Ada@Example.com "),
            email_hash("ada@example.com")
        );
        assert_eq!(email_hash("ada@example.com").len(), 64);
        assert_ne!(email_hash("ada@example.com"), email_hash("ada@example.org"));
    }
}
