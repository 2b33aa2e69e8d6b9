//! `POST /webhooks/whop/{source_id}`: the intake pipeline for Whop webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Whop).await
}
