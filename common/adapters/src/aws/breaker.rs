//! A circuit breaker per delivery endpoint, its state in DynamoDB so every container of a
//! function sees the same circuit.
//!
//! closed: deliveries go out; `threshold` consecutive transient failures open it.
//! open: deliveries fail fast (retried after the circuit's remaining cool-down) until
//! `cool_down` has passed, then one container takes the probe (a conditional write, so only
//! one does) and the circuit is half-open.
//! half-open: the probe's success closes it; its failure opens it again for another cool-down.
//! Items carry a TTL (`expiration`, epoch seconds) so idle circuits disappear.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_domain::ports::{Admission, BoxFuture, CircuitBreaker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub threshold: u32,
    pub cool_down: Duration,
    /// How long a probe may take before another container may probe instead.
    pub probe_lease: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            cool_down: Duration::from_secs(60),
            probe_lease: Duration::from_secs(30),
        }
    }
}

pub struct DynamoBreaker {
    client: Client,
    table: String,
    policy: BreakerPolicy,
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn secs_until(until_ms: i64, now_ms: i64) -> u32 {
    u32::try_from((until_ms - now_ms).max(0).div_euclid(1000) + 1).unwrap_or(u32::MAX)
}

const DAY_SECS: i64 = 86_400;

impl DynamoBreaker {
    pub fn new(client: Client, table: impl Into<String>, policy: BreakerPolicy) -> Self {
        Self {
            client,
            table: table.into(),
            policy,
        }
    }

    fn ms(duration: Duration) -> i64 {
        i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether a delivery to `key` may go out now.
    pub async fn admit(&self, key: &str, now_ms: i64) -> Result<Admission, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?
            .item
            .unwrap_or_default();
        let state = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str);
        let (guard_until, from_state) = match state {
            Some("open") => (number(&item, "open_until_ms"), "open"),
            Some("half_open") => (number(&item, "probe_until_ms"), "half_open"),
            _ => return Ok(Admission::Allowed),
        };
        if now_ms < guard_until {
            return Ok(Admission::Open {
                retry_after_secs: secs_until(guard_until, now_ms),
            });
        }
        // The cool-down (or a stalled probe's lease) is over: take the probe, if nobody else has.
        let probe_until = now_ms + Self::ms(self.policy.probe_lease);
        let guard = if from_state == "open" {
            "open_until_ms"
        } else {
            "probe_until_ms"
        };
        let taken = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key", s(key))
            .update_expression("SET #state = :half, probe_until_ms = :probe")
            .condition_expression(format!("#state = :from AND {guard} <= :now"))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":half", s("half_open"))
            .expression_attribute_values(":probe", n(probe_until))
            .expression_attribute_values(":from", s(from_state))
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match taken {
            Ok(_) => Ok(Admission::Probe),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Admission::Open {
                    retry_after_secs: secs_until(probe_until, now_ms),
                })
            }
            Err(e) => Err(StoreError(describe(&e))),
        }
    }

    /// A delivery that reached the endpoint: the circuit closes.
    pub async fn succeeded(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("state", s("closed"))
            .item("failures", n(0))
            .item("expiration", n(now_ms / 1000 + DAY_SECS))
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }

    /// A transient failure (5xx, 429, timeout, refused connection). Returns whether the circuit
    /// is now open.
    pub async fn failed(&self, key: &str, probe: bool, now_ms: i64) -> Result<bool, StoreError> {
        let open_until = now_ms + Self::ms(self.policy.cool_down);
        if probe {
            self.open(key, open_until, now_ms).await?;
            return Ok(true);
        }
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("key", s(key))
            .update_expression(
                "ADD failures :one SET expiration = :exp, #state = if_not_exists(#state, :closed)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(now_ms / 1000 + DAY_SECS))
            .expression_attribute_values(":closed", s("closed"))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        let item = counted.attributes.unwrap_or_default();
        let closed = item
            .get("state")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some("closed");
        if closed && number(&item, "failures") >= i64::from(self.policy.threshold) {
            self.open(key, open_until, now_ms).await?;
            return Ok(true);
        }
        Ok(!closed)
    }

    async fn open(&self, key: &str, open_until_ms: i64, now_ms: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", s(key))
            .item("state", s("open"))
            .item("failures", n(0))
            .item("open_until_ms", n(open_until_ms))
            .item("expiration", n(now_ms / 1000 + DAY_SECS))
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }
}

impl CircuitBreaker for DynamoBreaker {
    fn admit<'a>(
        &'a self,
        circuit: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, StoreError>> {
        Box::pin(DynamoBreaker::admit(self, circuit, now_ms))
    }

    fn failed<'a>(
        &'a self,
        circuit: &'a str,
        probe: bool,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            DynamoBreaker::failed(self, circuit, probe, now_ms)
                .await
                .map(|_| ())
        })
    }

    fn succeeded<'a>(
        &'a self,
        circuit: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(DynamoBreaker::succeeded(self, circuit, now_ms))
    }
}
