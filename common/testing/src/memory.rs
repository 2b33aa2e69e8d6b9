//! In-memory ports: for unit tests of every pipeline decision and for the CPU benchmark.
//! They follow the same semantics as the DynamoDB and SQS adapters, including failure switches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{
    Claim, DedupeStore, EventQueue, QueueError, RateDecision, RateLimit, RateLimiter, Source,
    SourceStore, StoreError,
};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct MemorySources {
    pub sources: Mutex<HashMap<String, Arc<Source>>>,
    pub fail: AtomicBool,
}

impl MemorySources {
    pub fn with(sources: impl IntoIterator<Item = Source>) -> Self {
        let map = sources
            .into_iter()
            .map(|s| (s.source_id.clone(), Arc::new(s)))
            .collect();
        Self {
            sources: Mutex::new(map),
            fail: AtomicBool::new(false),
        }
    }
}

impl SourceStore for MemorySources {
    async fn get(&self, source_id: &str) -> Result<Option<Arc<Source>>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("sources unavailable".into()));
        }
        Ok(lock(&self.sources).get(source_id).cloned())
    }
}

/// Fixed windows, like the DynamoDB limiter.
#[derive(Default)]
pub struct MemoryRateLimiter {
    pub counts: Mutex<HashMap<(String, i64), u32>>,
    pub fail: AtomicBool,
}

impl RateLimiter for MemoryRateLimiter {
    async fn hit(
        &self,
        source_id: &str,
        limit: &RateLimit,
        now_ms: i64,
    ) -> Result<RateDecision, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("rate limiter unavailable".into()));
        }
        let window = limit.window(now_ms);
        let mut counts = lock(&self.counts);
        let count = counts
            .entry((source_id.to_owned(), window.index))
            .or_insert(0);
        if *count >= limit.requests {
            return Ok(RateDecision::Limited {
                retry_after_secs: window.retry_after_secs(now_ms),
            });
        }
        *count += 1;
        Ok(RateDecision::Allowed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub completed: bool,
    pub payload_hash: String,
    pub lease_until_ms: i64,
}

/// Claims with a lease, like the DynamoDB store (without the TTL: records never expire here).
pub struct MemoryDedupe {
    pub records: Mutex<HashMap<String, Record>>,
    pub lease_ms: i64,
    pub fail: AtomicBool,
}

impl Default for MemoryDedupe {
    fn default() -> Self {
        Self {
            records: Mutex::default(),
            lease_ms: 60_000,
            fail: AtomicBool::new(false),
        }
    }
}

impl DedupeStore for MemoryDedupe {
    async fn claim(&self, key: &str, payload_hash: &str, now_ms: i64) -> Result<Claim, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError("dedupe unavailable".into()));
        }
        let mut records = lock(&self.records);
        if let Some(existing) = records.get(key) {
            if existing.completed || existing.lease_until_ms > now_ms {
                return Ok(Claim::Existing {
                    completed: existing.completed,
                    payload_hash: existing.payload_hash.clone(),
                    retry_after_secs: u64::try_from(
                        (existing.lease_until_ms - now_ms).div_euclid(1000) + 1,
                    )
                    .unwrap_or(1),
                });
            }
        }
        records.insert(
            key.to_owned(),
            Record {
                completed: false,
                payload_hash: payload_hash.to_owned(),
                lease_until_ms: now_ms + self.lease_ms,
            },
        );
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str, payload_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        lock(&self.records).insert(
            key.to_owned(),
            Record {
                completed: true,
                payload_hash: payload_hash.to_owned(),
                lease_until_ms: now_ms,
            },
        );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        lock(&self.records).remove(key);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryQueue {
    pub messages: Mutex<Vec<Envelope<'static>>>,
    pub fail: AtomicBool,
}

impl EventQueue for MemoryQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable("queue unavailable".into()));
        }
        lock(&self.messages).push(envelope.clone().into_owned());
        Ok(())
    }
}
