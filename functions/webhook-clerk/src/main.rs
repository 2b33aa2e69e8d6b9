//! `POST /webhooks/clerk/{source_id}`: the intake pipeline for Clerk webhooks.

use inlet_common::intake::lambda;
use inlet_common::providers::Provider;

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::run(Provider::Clerk).await
}
