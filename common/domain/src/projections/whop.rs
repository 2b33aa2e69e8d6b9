//! Whop (v1 webhooks): memberships and payments, with payment recovery.
//! Payloads: `{"type": "membership.activated", "data": {"id": "mem_..", "status", "user": {"id",
//! "email"}, "plan": {"id"}, "renewal_period_end"}, ...}`; payments carry `membership.id`,
//! `user.id`, `total` (currency units), `currency`, `failure_message`.

use inlet_postgres::Plan;
use serde_json::Value;

use super::members::{
    required, text, upsert_member, upsert_membership, upsert_payment, Contact, MembershipState,
    PaymentRecord,
};
use super::recovery::{close_case, open_case, Closing, FailedPayment};
use crate::ledger::{Event, Projections};
use inlet_core::{DeadLetterCode, Failure};
use inlet_webhooks::providers::Provider;

const PROVIDER: &str = Provider::Whop.as_str();

/// Membership states after which a failed payment is not worth chasing.
const ENDED: [&str; 3] = ["canceled", "expired", "completed"];

pub fn register(projections: Projections) -> Projections {
    projections
        .register(Provider::Whop, "membership.activated", membership_changed)
        .register(Provider::Whop, "membership.deactivated", membership_changed)
        .register(Provider::Whop, "payment.succeeded", payment_succeeded)
        .register(Provider::Whop, "payment.failed", payment_failed)
}

fn data<'e>(event: &'e Event<'_>) -> Result<&'e Value, Failure> {
    event
        .payload
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| {
            Failure::permanent(
                DeadLetterCode::ProjectionRejected,
                "Whop event without data",
            )
        })
}

fn membership_changed<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let membership = data(event)?;
    let id = required(membership, "/id")?;
    let deactivated = event.envelope.meta.event_type == "membership.deactivated";
    let status = match text(membership, "/status") {
        Some(s) if deactivated && !ENDED.contains(&s) => "canceled",
        Some(s) => s,
        None if deactivated => "canceled",
        None => "active",
    };
    let user = text(membership, "/user/id");
    if let Some(user) = user {
        let contact = Contact {
            email: text(membership, "/user/email"),
            name: text(membership, "/user/name").or_else(|| text(membership, "/user/username")),
        };
        upsert_member(plan, event, PROVIDER, user, contact);
    }
    upsert_membership(
        plan,
        &MembershipState {
            provider: PROVIDER,
            external_id: id,
            member: user,
            plan: text(membership, "/plan/id"),
            status,
            current_period_end: text(membership, "/renewal_period_end"),
        },
    );
    if deactivated {
        close_case(plan, PROVIDER, id, Closing::Lost, None, event.occurred_at());
    }
    Ok(())
}

fn minor_units(payment: &Value) -> Result<i64, Failure> {
    let currency = text(payment, "/currency").unwrap_or("usd");
    payment
        .get("total")
        .or_else(|| payment.get("subtotal"))
        .and_then(Value::as_f64)
        .filter(|total| *total < 1e13)
        .and_then(|total| crate::money::to_minor(total, currency))
        .ok_or_else(|| {
            Failure::permanent(
                DeadLetterCode::ProjectionRejected,
                "Whop payment without a valid total",
            )
        })
}

fn record_payment<'p>(
    plan: &mut Plan<'_>,
    event: &'p Event<'_>,
    paid: bool,
) -> Result<(&'p str, Option<&'p str>, i64), Failure> {
    let payment = data(event)?;
    let id = required(payment, "/id")?;
    let membership = text(payment, "/membership/id");
    let amount = minor_units(payment)?;
    upsert_payment(
        plan,
        &PaymentRecord {
            provider: PROVIDER,
            external_id: id,
            membership,
            member: text(payment, "/user/id"),
            paid,
            amount,
            currency: text(payment, "/currency").unwrap_or("usd"),
            failure_reason: if paid {
                None
            } else {
                text(payment, "/failure_message").or(Some("payment_failed"))
            },
            occurred_at: event.occurred_at(),
        },
    );
    Ok((id, membership, amount))
}

fn payment_succeeded<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let (id, membership, _) = record_payment(plan, event, true)?;
    if let Some(membership) = membership {
        close_case(
            plan,
            PROVIDER,
            membership,
            Closing::Recovered,
            Some(id),
            event.occurred_at(),
        );
    }
    Ok(())
}

fn payment_failed<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let (id, membership, amount) = record_payment(plan, event, false)?;
    if let Some(membership) = membership {
        open_case(
            plan,
            &FailedPayment {
                provider: PROVIDER,
                membership,
                payment: id,
                amount,
                currency: text(data(event)?, "/currency").unwrap_or("usd"),
                failed_at: event.occurred_at(),
                ended: &ENDED,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whop_totals_become_minor_units_and_nonsense_is_refused() {
        assert_eq!(minor_units(&serde_json::json!({"total": 49.0})), Ok(4900));
        assert_eq!(minor_units(&serde_json::json!({"total": 19.99})), Ok(1999));
        assert_eq!(minor_units(&serde_json::json!({"subtotal": 5})), Ok(500));
        assert_eq!(
            minor_units(&serde_json::json!({"total": 1200, "currency": "jpy"})),
            Ok(1200),
            "yen have no minor unit"
        );
        for bad in [
            serde_json::json!({"total": -1}),
            serde_json::json!({"total": "49"}),
            serde_json::json!({}),
        ] {
            assert!(minor_units(&bad).is_err(), "{bad}");
        }
    }
}
