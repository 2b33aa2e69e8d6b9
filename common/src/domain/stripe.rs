//! Stripe projections: customers -> members, subscriptions -> memberships, invoices ->
//! payments and recovery cases. Each is idempotent (upserts), so a replay changes nothing.

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;

use super::ledger::{Event, ProjectionFuture, Projections};
use super::recovery::{close_case, open_case, Closing, FailedPayment};
use crate::consumer::Failure;
use crate::db::failure_for;

const PROVIDER: &str = "stripe";

/// Subscription states after which a failed payment is not worth chasing.
const ENDED: [&str; 2] = ["canceled", "incomplete_expired"];

pub fn register(projections: Projections) -> Projections {
    projections
        .register(PROVIDER, "customer.created", customer_upserted)
        .register(PROVIDER, "customer.updated", customer_upserted)
        .register(PROVIDER, "customer.deleted", customer_deleted)
        .register(
            PROVIDER,
            "customer.subscription.created",
            subscription_changed,
        )
        .register(
            PROVIDER,
            "customer.subscription.updated",
            subscription_changed,
        )
        .register(
            PROVIDER,
            "customer.subscription.deleted",
            subscription_changed,
        )
        .register(PROVIDER, "invoice.paid", invoice_paid)
        .register(PROVIDER, "invoice.payment_failed", invoice_payment_failed)
        .register(PROVIDER, "checkout.session.completed", checkout_completed)
}

fn db(error: tokio_postgres::Error) -> Failure {
    failure_for(&error)
}

/// `data.object`, which every Stripe event carries.
fn object<'e>(event: &'e Event<'_>) -> Result<&'e Value, Failure> {
    event
        .payload
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or_else(|| Failure::Permanent("Stripe event without data.object".into()))
}

fn text<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required<'v>(value: &'v Value, pointer: &str) -> Result<&'v str, Failure> {
    text(value, pointer)
        .ok_or_else(|| Failure::Permanent(format!("Stripe object without {pointer}")))
}

/// SHA-256 of the trimmed, lower-cased address: lookups without keeping the address.
pub fn email_hash(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// When the event happened (RFC 3339), for case and reminder times.
fn occurred_at<'e>(event: &'e Event<'_>) -> &'e str {
    let meta = &event.envelope.meta;
    meta.occurred_at.as_deref().unwrap_or(&meta.received_at)
}

async fn upsert_member(
    tx: &Transaction<'_>,
    customer: &str,
    email: Option<&str>,
) -> Result<(), Failure> {
    tx.execute(
        "INSERT INTO members (company_id, provider, external_id, email_hash)
         VALUES (get_current_company_id(), $1, $2, $3)
         ON CONFLICT (company_id, provider, external_id)
         DO UPDATE SET email_hash = coalesce(EXCLUDED.email_hash, members.email_hash), status = 'active'",
        &[&PROVIDER, &customer, &email.map(email_hash)],
    )
    .await
    .map_err(db)?;
    Ok(())
}

fn customer_upserted<'t>(tx: &'t Transaction<'t>, event: &'t Event<'t>) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let customer = object(event)?;
        upsert_member(tx, required(customer, "/id")?, text(customer, "/email")).await
    })
}

fn customer_deleted<'t>(tx: &'t Transaction<'t>, event: &'t Event<'t>) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let id = required(object(event)?, "/id")?;
        tx.execute(
            "INSERT INTO members (company_id, provider, external_id, status)
             VALUES (get_current_company_id(), $1, $2, 'deleted')
             ON CONFLICT (company_id, provider, external_id) DO UPDATE SET status = 'deleted'",
            &[&PROVIDER, &id],
        )
        .await
        .map_err(db)?;
        Ok(())
    })
}

fn subscription_changed<'t>(tx: &'t Transaction<'t>, event: &'t Event<'t>) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let subscription = object(event)?;
        let id = required(subscription, "/id")?;
        let status = required(subscription, "/status")?;
        let plan =
            text(subscription, "/items/data/0/price/id").or_else(|| text(subscription, "/plan/id"));
        let period_end = subscription
            .pointer("/current_period_end")
            .or_else(|| subscription.pointer("/items/data/0/current_period_end"))
            .and_then(Value::as_i64);
        tx.execute(
            "INSERT INTO memberships (company_id, provider, external_id, member_external_id, plan, status, current_period_end)
             VALUES (get_current_company_id(), $1, $2, $3, $4, $5, to_timestamp($6::bigint))
             ON CONFLICT (company_id, provider, external_id) DO UPDATE
                SET member_external_id = EXCLUDED.member_external_id, plan = EXCLUDED.plan,
                    status = EXCLUDED.status, current_period_end = EXCLUDED.current_period_end",
            &[&PROVIDER, &id, &text(subscription, "/customer"), &plan, &status, &period_end],
        )
        .await
        .map_err(db)?;
        if ENDED.contains(&status)
            || event.envelope.meta.event_type == "customer.subscription.deleted"
        {
            close_case(tx, PROVIDER, id, Closing::Lost, None, occurred_at(event)).await?;
        }
        Ok(())
    })
}

/// The invoice's subscription: `subscription` before API 2025-03, `parent.subscription_details` after.
fn invoice_subscription(invoice: &Value) -> Option<&str> {
    text(invoice, "/subscription")
        .or_else(|| text(invoice, "/parent/subscription_details/subscription"))
}

async fn upsert_payment(
    tx: &Transaction<'_>,
    event: &Event<'_>,
    status: &str,
    amount: i64,
) -> Result<(), Failure> {
    let invoice = object(event)?;
    let failure_reason = match status {
        "failed" => text(invoice, "/last_finalization_error/code").or(Some("payment_failed")),
        _ => None,
    };
    tx.execute(
        "INSERT INTO payments (company_id, provider, external_id, membership_external_id, member_external_id,
             status, amount, currency, failure_reason, occurred_at)
         VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9::text::timestamptz)
         ON CONFLICT (company_id, provider, external_id) DO UPDATE
            SET status = EXCLUDED.status, amount = EXCLUDED.amount, failure_reason = EXCLUDED.failure_reason,
                occurred_at = EXCLUDED.occurred_at",
        &[
            &PROVIDER,
            &required(invoice, "/id")?,
            &invoice_subscription(invoice),
            &text(invoice, "/customer"),
            &status,
            &amount,
            &required(invoice, "/currency")?,
            &failure_reason,
            &occurred_at(event),
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

fn amount(invoice: &Value, field: &str) -> Result<i64, Failure> {
    invoice
        .get(field)
        .and_then(Value::as_i64)
        .filter(|a| *a >= 0)
        .ok_or_else(|| Failure::Permanent(format!("Stripe invoice without a valid {field}")))
}

fn invoice_paid<'t>(tx: &'t Transaction<'t>, event: &'t Event<'t>) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let invoice = object(event)?;
        upsert_payment(tx, event, "paid", amount(invoice, "amount_paid")?).await?;
        if let Some(subscription) = invoice_subscription(invoice) {
            let payment = required(invoice, "/id")?;
            close_case(
                tx,
                PROVIDER,
                subscription,
                Closing::Recovered,
                Some(payment),
                occurred_at(event),
            )
            .await?;
        }
        Ok(())
    })
}

fn invoice_payment_failed<'t>(
    tx: &'t Transaction<'t>,
    event: &'t Event<'t>,
) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let invoice = object(event)?;
        let due = amount(invoice, "amount_due")?;
        upsert_payment(tx, event, "failed", due).await?;
        let Some(subscription) = invoice_subscription(invoice) else {
            return Ok(()); // a one-off invoice: nothing to keep alive
        };
        let membership_status: Option<String> = tx
            .query_opt(
                "SELECT status FROM memberships WHERE company_id = get_current_company_id()
                   AND provider = $1 AND external_id = $2",
                &[&PROVIDER, &subscription],
            )
            .await
            .map_err(db)?
            .map(|row| row.get(0));
        // Unknown membership: its subscription event may simply not have arrived yet.
        if membership_status
            .as_deref()
            .is_some_and(|s| ENDED.contains(&s))
        {
            return Ok(());
        }
        open_case(
            tx,
            &FailedPayment {
                provider: PROVIDER,
                membership: subscription,
                payment: required(invoice, "/id")?,
                amount: due,
                currency: required(invoice, "/currency")?,
                failed_at: occurred_at(event),
            },
        )
        .await?;
        Ok(())
    })
}

fn checkout_completed<'t>(tx: &'t Transaction<'t>, event: &'t Event<'t>) -> ProjectionFuture<'t> {
    Box::pin(async move {
        let session = object(event)?;
        let Some(customer) = text(session, "/customer") else {
            return Ok(()); // guest checkout: no member to record
        };
        upsert_member(tx, customer, text(session, "/customer_details/email")).await?;
        if let Some(subscription) = text(session, "/subscription") {
            tx.execute(
                "INSERT INTO memberships (company_id, provider, external_id, member_external_id, status)
                 VALUES (get_current_company_id(), $1, $2, $3, 'active')
                 ON CONFLICT (company_id, provider, external_id) DO NOTHING",
                &[&PROVIDER, &subscription, &customer],
            )
            .await
            .map_err(db)?;
        }
        Ok(())
    })
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
    }

    #[test]
    fn invoices_name_their_subscription_in_old_and_new_api_versions() {
        let old = serde_json::json!({"subscription": "sub_1"});
        let new =
            serde_json::json!({"parent": {"subscription_details": {"subscription": "sub_2"}}});
        assert_eq!(invoice_subscription(&old), Some("sub_1"));
        assert_eq!(invoice_subscription(&new), Some("sub_2"));
        assert_eq!(invoice_subscription(&serde_json::json!({})), None);
    }
}
