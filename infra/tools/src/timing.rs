//! Timing helpers for the benchmarks: the median, and a port wrapper that records how long
//! each call of the intake pipeline took.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use inlet_core::StoreError;
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{Claim, DedupeStore, EventQueue, QueueError};

/// Milliseconds per call name.
pub type Calls = Arc<Mutex<HashMap<&'static str, Vec<f64>>>>;

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A port that records how long each call took.
pub struct Timed<P> {
    inner: P,
    calls: Calls,
}

impl<P> Timed<P> {
    /// Wraps `inner`; each call's milliseconds go to `calls` under the call's name.
    pub fn new(inner: P, calls: Calls) -> Self {
        Self { inner, calls }
    }

    async fn time<T>(&self, name: &'static str, call: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let result = call.await;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Ok(mut calls) = self.calls.lock() {
            calls.entry(name).or_default().push(ms);
        }
        result
    }
}

impl<P: DedupeStore + Sync> DedupeStore for Timed<P> {
    async fn claim(&self, key: &str, hash: &str, now_ms: i64) -> Result<Claim, StoreError> {
        self.time(
            "dedupe claim (DynamoDB PutItem)",
            self.inner.claim(key, hash, now_ms),
        )
        .await
    }
    async fn complete(&self, key: &str, hash: &str, now_ms: i64) -> Result<(), StoreError> {
        self.time(
            "dedupe complete (DynamoDB UpdateItem, after the answer)",
            self.inner.complete(key, hash, now_ms),
        )
        .await
    }
    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.inner.release(key).await
    }
}

impl<P: EventQueue + Sync> EventQueue for Timed<P> {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        self.time("enqueue (SQS SendMessage)", self.inner.enqueue(envelope))
            .await
    }
}
