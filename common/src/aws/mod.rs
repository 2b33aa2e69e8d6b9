//! AWS adapters. Clients are built once per container from one shared config. Adapters store
//! and fetch; they decide no business rule.

mod dedupe;
mod queue;
mod rate_limit;
mod sources;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub use dedupe::DynamoDedupe;
pub use queue::SqsQueue;
pub use rate_limit::DynamoRateLimiter;
pub use sources::{valid_source_id, DynamoSources};

/// Loads the SDK configuration from the environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for the local emulator) with bounded timeouts: a webhook must be answered
/// within a second or two, so no call may hang on an unreachable endpoint.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .load()
        .await
}

/// An SDK error as one line with its causes (service message, request id): never item values.
pub(crate) fn describe<E: std::error::Error>(error: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string()
}
