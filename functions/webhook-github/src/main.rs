//! `POST /webhooks/github/{source_id}`: the intake pipeline for Github webhooks.

use inlet_common::intake::lambda;
use inlet_common::providers::Provider;

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::run(Provider::Github).await
}
