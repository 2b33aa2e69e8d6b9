//! Dedupe claims in DynamoDB with Powertools for AWS Lambda's semantics and attribute names
//! (`id`, `status`, `expiration` in seconds, `in_progress_expiration` in milliseconds,
//! `validation` = payload hash), so Python or TypeScript functions could share the table.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_webhooks::intake::{Claim, DedupeStore};

const INPROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

#[derive(Clone, Debug)]
pub struct DynamoDedupe {
    client: Client,
    table: String,
    /// How long a claim may stay INPROGRESS before another request may take it over.
    lease_ms: i64,
    /// How long a completed record dedupes (providers retry for up to ~3 days).
    ttl_secs: i64,
}

impl DynamoDedupe {
    pub fn new(client: Client, table: impl Into<String>, lease_ms: i64, ttl_secs: i64) -> Self {
        Self {
            client,
            table: table.into(),
            lease_ms,
            ttl_secs,
        }
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl DedupeStore for DynamoDedupe {
    async fn claim(&self, key: &str, payload_hash: &str, now_ms: i64) -> Result<Claim, StoreError> {
        let now_secs = now_ms.div_euclid(1000);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", s(key))
            .item("status", s(INPROGRESS))
            .item("expiration", n(now_secs + self.ttl_secs))
            .item("in_progress_expiration", n(now_ms + self.lease_ms))
            .item("validation", s(payload_hash))
            // Powertools' expression: free, expired (TTL lags), or an abandoned in-progress lease.
            .condition_expression(
                "attribute_not_exists(#id) OR #expiry < :now OR \
                 (#status = :inprogress AND #in_progress_expiry < :now_in_millis)",
            )
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#expiry", "expiration")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#in_progress_expiry", "in_progress_expiration")
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":now_in_millis", n(now_ms))
            .expression_attribute_values(":inprogress", s(INPROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(Claim::Claimed),
            Err(error) => error,
        };
        let Some(
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                failed,
            ),
        ) = error.as_service_error()
        else {
            return Err(StoreError(format!(
                "dedupe claim failed: {}",
                describe(&error)
            )));
        };
        let old = failed.item();
        let text = |name: &str| {
            old.and_then(|i| i.get(name))
                .and_then(|v| v.as_s().ok())
                .cloned()
        };
        let number = |name: &str| {
            old.and_then(|i| i.get(name))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let lease_left_ms =
            number("in_progress_expiration").map_or(self.lease_ms, |until| until - now_ms);
        Ok(Claim::Existing {
            completed: text("status").as_deref() == Some(COMPLETED),
            payload_hash: text("validation").unwrap_or_default(),
            retry_after_secs: u64::try_from(lease_left_ms.div_euclid(1000) + 1).unwrap_or(1),
        })
    }

    async fn complete(&self, key: &str, payload_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(key))
            .update_expression("SET #status = :completed, #expiry = :expiry, #validation = :hash")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expiry", "expiration")
            .expression_attribute_names("#validation", "validation")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":expiry", n(now_ms.div_euclid(1000) + self.ttl_secs))
            .expression_attribute_values(":hash", s(payload_hash))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("dedupe complete failed: {}", describe(&e))))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", s(key))
            // Never delete a completed record: only our own in-progress claim.
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inprogress", s(INPROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError(format!(
                "dedupe release failed: {}",
                describe(&e)
            ))),
        }
    }
}
