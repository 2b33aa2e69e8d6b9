//! Fixed-window rate limits per source in DynamoDB: one counter item per (source, window),
//! incremented with a conditional update so concurrent containers share one count.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_webhooks::intake::{RateDecision, RateLimit, RateLimiter};

#[derive(Clone, Debug)]
pub struct DynamoRateLimiter {
    client: Client,
    table: String,
}

impl DynamoRateLimiter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

impl RateLimiter for DynamoRateLimiter {
    async fn hit(
        &self,
        source_id: &str,
        limit: &RateLimit,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        let window = limit.window(now_ms);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "pk",
                AttributeValue::S(format!("{source_id}#{}", window.index)),
            )
            .update_expression("ADD #count :one SET #expires = if_not_exists(#expires, :expires)")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "n")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.requests.to_string()))
            // TTL a minute after the window ends: the item is useless by then.
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window.end_ms / 1000 + 60).to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(RateDecision::Allowed),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(RateDecision::Limited {
                    retry_after_secs: window.retry_after_secs(now_ms),
                })
            }
            Err(e) => Err(StoreError(format!(
                "rate limit update failed: {}",
                describe(&e)
            ))),
        }
    }
}
