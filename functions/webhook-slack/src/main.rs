//! `POST /webhooks/slack/{source_id}`: the intake pipeline for Slack webhooks.

use inlet_lambda::webhook::{self, Provider};

#[tokio::main]
async fn main() -> Result<(), webhook::Error> {
    webhook::run(Provider::Slack).await
}
