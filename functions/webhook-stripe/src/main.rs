//! `POST /webhooks/stripe/{source_id}`: the intake pipeline for Stripe webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Stripe).await
}
