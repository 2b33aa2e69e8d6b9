//! AWS adapters. Clients are built once per container from one shared config. Adapters store
//! and fetch; they decide no business rule.

mod alerts;
mod breaker;
mod dead_letter_queue;
mod dedupe;
mod email;
mod exports;
mod queue;
mod rate_limit;
mod redelivery;
mod reminder_queue;
mod sources;
mod sqs_event;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

pub use alerts::SnsAlerts;
pub use breaker::{BreakerPolicy, DynamoBreaker};
pub use dead_letter_queue::{queue_url, SqsDeadLetters};
pub use dedupe::DynamoDedupe;
pub use email::SesEmail;
pub use exports::{ensure_local_bucket, S3Exports, SqsExportQueue};
pub use queue::SqsQueue;
pub use rate_limit::DynamoRateLimiter;
pub use redelivery::SqsRedelivery;
pub use reminder_queue::SqsReminderQueue;
pub use sources::DynamoSources;
pub use sqs_event::lambda_record;

/// How long AWS calls may take: intake answers providers that give up quickly (Slack after
/// 3 s), everything else can wait longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Webhook intake: each call settles within ~1 s, so a request is answered in ~2 s at worst
    /// even when every store is slow (then 503, and the provider retries).
    Intake,
    /// Consumers, crons and the CLI.
    Background,
}

/// Loads the SDK configuration from the environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for the local emulator) with bounded timeouts: no call may hang on an
/// unreachable endpoint.
pub async fn sdk_config_for(patience: Patience) -> SdkConfig {
    let (connect, attempt, operation, attempts) = match patience {
        Patience::Intake => (
            Duration::from_millis(300),
            Duration::from_millis(600),
            Duration::from_millis(1000),
            2,
        ),
        Patience::Background => (
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_secs(5),
            3,
        ),
    };
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(connect)
                .operation_attempt_timeout(attempt)
                .operation_timeout(operation)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .load()
        .await
}

/// [`sdk_config_for`] with [`Patience::Background`].
pub async fn sdk_config() -> SdkConfig {
    sdk_config_for(Patience::Background).await
}

/// An SDK error as one line with its causes (service message, request id): never item values.
pub fn describe_error<E: std::error::Error>(error: &E) -> String {
    describe(error)
}

/// An SDK error as one line with its causes (service message, request id): never item values.
pub(crate) fn describe<E: std::error::Error>(error: &E) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string()
}
