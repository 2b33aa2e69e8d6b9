//! Stripe projections: customers -> members, subscriptions -> memberships, invoices ->
//! payments and recovery cases. Each is idempotent (upserts), so a replay changes nothing.

use inlet_postgres::{params, Plan};
use serde_json::Value;

use super::members::{
    delete_member, required, text, upsert_member, upsert_membership, upsert_payment, Contact,
    MembershipState, PaymentRecord,
};
use super::recovery::{close_case, open_case, Closing, FailedPayment};
use crate::ledger::{Event, Projections};
use inlet_core::clock::rfc3339_ms;
use inlet_core::{DeadLetterCode, Failure};
use inlet_webhooks::providers::Provider;

const PROVIDER: &str = Provider::Stripe.as_str();

/// Subscription states after which a failed payment is not worth chasing.
const ENDED: [&str; 2] = ["canceled", "incomplete_expired"];

pub fn register(projections: Projections) -> Projections {
    projections
        .register(Provider::Stripe, "customer.created", customer_upserted)
        .register(Provider::Stripe, "customer.updated", customer_upserted)
        .register(Provider::Stripe, "customer.deleted", customer_deleted)
        .register(
            Provider::Stripe,
            "customer.subscription.created",
            subscription_changed,
        )
        .register(
            Provider::Stripe,
            "customer.subscription.updated",
            subscription_changed,
        )
        .register(
            Provider::Stripe,
            "customer.subscription.deleted",
            subscription_changed,
        )
        .register(Provider::Stripe, "invoice.paid", invoice_paid)
        .register(
            Provider::Stripe,
            "invoice.payment_failed",
            invoice_payment_failed,
        )
        .register(
            Provider::Stripe,
            "checkout.session.completed",
            checkout_completed,
        )
}

/// `data.object`, which every Stripe event carries.
fn object<'e>(event: &'e Event<'_>) -> Result<&'e Value, Failure> {
    event
        .payload
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or_else(|| {
            Failure::permanent(
                DeadLetterCode::ProjectionRejected,
                "Stripe event without data.object",
            )
        })
}

fn customer_upserted<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let customer = object(event)?;
    upsert_member(
        plan,
        event,
        PROVIDER,
        required(customer, "/id")?,
        Contact {
            email: text(customer, "/email"),
            name: text(customer, "/name"),
        },
    );
    Ok(())
}

fn customer_deleted<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    delete_member(plan, PROVIDER, required(object(event)?, "/id")?);
    Ok(())
}

fn subscription_changed<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let subscription = object(event)?;
    let id = required(subscription, "/id")?;
    let status = required(subscription, "/status")?;
    let period_end = subscription
        .pointer("/current_period_end")
        .or_else(|| subscription.pointer("/items/data/0/current_period_end"))
        .and_then(Value::as_i64)
        .and_then(|secs| rfc3339_ms(secs.saturating_mul(1000)));
    upsert_membership(
        plan,
        &MembershipState {
            provider: PROVIDER,
            external_id: id,
            member: text(subscription, "/customer"),
            plan: text(subscription, "/items/data/0/price/id")
                .or_else(|| text(subscription, "/plan/id")),
            status,
            current_period_end: period_end.as_deref(),
        },
    );
    if ENDED.contains(&status) || event.envelope.meta.event_type == "customer.subscription.deleted"
    {
        close_case(plan, PROVIDER, id, Closing::Lost, None, event.occurred_at());
    }
    Ok(())
}

/// The invoice's subscription: `subscription` before API 2025-03, `parent.subscription_details` after.
fn invoice_subscription(invoice: &Value) -> Option<&str> {
    text(invoice, "/subscription")
        .or_else(|| text(invoice, "/parent/subscription_details/subscription"))
}

fn amount(invoice: &Value, field: &str) -> Result<i64, Failure> {
    invoice
        .get(field)
        .and_then(Value::as_i64)
        .filter(|a| *a >= 0)
        .ok_or_else(|| {
            Failure::permanent(
                DeadLetterCode::ProjectionRejected,
                format!("Stripe invoice without a valid {field}"),
            )
        })
}

fn record_invoice(
    plan: &mut Plan<'_>,
    event: &Event<'_>,
    paid: bool,
    amount: i64,
) -> Result<(), Failure> {
    let invoice = object(event)?;
    upsert_payment(
        plan,
        &PaymentRecord {
            provider: PROVIDER,
            external_id: required(invoice, "/id")?,
            membership: invoice_subscription(invoice),
            member: text(invoice, "/customer"),
            paid,
            amount,
            currency: required(invoice, "/currency")?,
            failure_reason: (!paid).then(|| {
                text(invoice, "/last_finalization_error/code").unwrap_or("payment_failed")
            }),
            occurred_at: event.occurred_at(),
        },
    );
    Ok(())
}

fn invoice_paid<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let invoice = object(event)?;
    record_invoice(plan, event, true, amount(invoice, "amount_paid")?)?;
    if let Some(subscription) = invoice_subscription(invoice) {
        let payment = required(invoice, "/id")?;
        close_case(
            plan,
            PROVIDER,
            subscription,
            Closing::Recovered,
            Some(payment),
            event.occurred_at(),
        );
    }
    Ok(())
}

fn invoice_payment_failed<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let invoice = object(event)?;
    let due = amount(invoice, "amount_due")?;
    let payment = required(invoice, "/id")?;
    let currency = required(invoice, "/currency")?;
    record_invoice(plan, event, false, due)?;
    // A one-off invoice has nothing to keep alive.
    if let Some(subscription) = invoice_subscription(invoice) {
        open_case(
            plan,
            &FailedPayment {
                provider: PROVIDER,
                membership: subscription,
                payment,
                amount: due,
                currency,
                failed_at: event.occurred_at(),
                ended: &ENDED,
            },
        );
    }
    Ok(())
}

fn checkout_completed<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let session = object(event)?;
    let Some(customer) = text(session, "/customer") else {
        return Ok(()); // guest checkout: no member to record
    };
    upsert_member(
        plan,
        event,
        PROVIDER,
        customer,
        Contact {
            email: text(session, "/customer_details/email"),
            name: text(session, "/customer_details/name"),
        },
    );
    if let Some(subscription) = text(session, "/subscription") {
        plan.push(
            "INSERT INTO memberships (company_id, provider, external_id, member_external_id, status)
             VALUES (get_current_company_id(), $1, $2, $3, 'active')
             ON CONFLICT (company_id, provider, external_id) DO NOTHING",
            params![PROVIDER, subscription, customer],
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
