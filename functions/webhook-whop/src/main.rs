//! `POST /webhooks/whop/{source_id}`: the intake pipeline for Whop webhooks.

use inlet_common::intake::lambda;
use inlet_common::providers::Provider;

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::run(Provider::Whop).await
}
