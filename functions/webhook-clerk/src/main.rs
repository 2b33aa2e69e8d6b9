//! `POST /webhooks/clerk/{source_id}`: the intake pipeline for Clerk webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Clerk).await
}
