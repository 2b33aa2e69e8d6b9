//! Clerk users -> members. Race-safe with the application: a `user.created` processed while the
//! app creates the same member itself ends in one row, without error (see `upsert_member`).

use inlet_postgres::Plan;
use serde_json::Value;

use super::members::{delete_member, required, text, upsert_member, Contact};
use crate::ledger::{Event, Projections};
use inlet_core::{DeadLetterCode, Failure};
use inlet_webhooks::providers::Provider;

const PROVIDER: &str = Provider::Clerk.as_str();

pub fn register(projections: Projections) -> Projections {
    projections
        .register(Provider::Clerk, "user.created", user_upserted)
        .register(Provider::Clerk, "user.updated", user_upserted)
        .register(Provider::Clerk, "user.deleted", user_deleted)
}

fn data<'e>(event: &'e Event<'_>) -> Result<&'e Value, Failure> {
    event
        .payload
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| {
            Failure::permanent(
                DeadLetterCode::ProjectionRejected,
                "Clerk event without data",
            )
        })
}

/// The user's primary address: the entry of `email_addresses` whose id is
/// `primary_email_address_id`, else the first one.
fn primary_email(user: &Value) -> Option<&str> {
    let addresses = user.get("email_addresses")?.as_array()?;
    let primary = text(user, "/primary_email_address_id");
    addresses
        .iter()
        .find(|a| primary.is_some() && a.get("id").and_then(Value::as_str) == primary)
        .or_else(|| addresses.first())
        .and_then(|a| text(a, "/email_address"))
}

fn user_upserted<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    let user = data(event)?;
    upsert_member(
        plan,
        event,
        PROVIDER,
        required(user, "/id")?,
        Contact {
            email: primary_email(user),
            name: text(user, "/first_name"),
        },
    );
    Ok(())
}

fn user_deleted<'e>(plan: &mut Plan<'e>, event: &'e Event<'e>) -> Result<(), Failure> {
    delete_member(plan, PROVIDER, required(data(event)?, "/id")?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_address_is_the_one_its_id_names() {
        let user = serde_json::json!({
            "primary_email_address_id": "idn_2",
            "email_addresses": [{"id": "idn_1", "email_address": "old@example.com"}, {"id": "idn_2", "email_address": "ada@example.com"}]
        });
        assert_eq!(primary_email(&user), Some("ada@example.com"));
        let no_primary = serde_json::json!({"email_addresses": [{"id": "idn_1", "email_address": "a@example.com"}]});
        assert_eq!(primary_email(&no_primary), Some("a@example.com"));
        assert_eq!(
            primary_email(&serde_json::json!({"email_addresses": []})),
            None
        );
    }
}
