//! `POST /webhooks/github/{source_id}`: the intake pipeline for Github webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Github).await
}
