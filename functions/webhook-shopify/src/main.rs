//! `POST /webhooks/shopify/{source_id}`: the intake pipeline for Shopify webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Shopify).await
}
