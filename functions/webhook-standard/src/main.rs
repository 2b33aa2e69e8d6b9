//! `POST /webhooks/standard/{source_id}`: the intake pipeline for Standard webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Standard).await
}
