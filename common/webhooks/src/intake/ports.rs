//! The pipeline's ports: one trait per capability, so a handler's signature says what it can touch.

use super::source::{RateLimit, Source};
use std::sync::Arc;

use crate::envelope::Envelope;

pub use inlet_core::StoreError;

pub trait SourceStore {
    fn get(
        &self,
        source_id: &str,
    ) -> impl std::future::Future<Output = Result<Option<Arc<Source>>, StoreError>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after_secs: u64 },
}

pub trait RateLimiter {
    /// Counts one request against `limit` for `source_id` at `now_ms`.
    fn hit(
        &self,
        source_id: &str,
        limit: &RateLimit,
        now_ms: i64,
    ) -> impl std::future::Future<Output = Result<RateDecision, StoreError>> + Send;
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: go on.
    Claimed,
    /// Someone has it: completed (a duplicate) or in progress under a live lease.
    Existing {
        completed: bool,
        payload_hash: String,
        retry_after_secs: u64,
    },
}

pub trait DedupeStore {
    fn claim(
        &self,
        key: &str,
        payload_hash: &str,
        now_ms: i64,
    ) -> impl std::future::Future<Output = Result<Claim, StoreError>> + Send;
    fn complete(
        &self,
        key: &str,
        payload_hash: &str,
        now_ms: i64,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Gives a claim back after a failed enqueue so the provider's retry can claim it.
    fn release(
        &self,
        key: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the envelope is larger than the queue accepts")]
    TooLarge,
    #[error("{0}")]
    Unavailable(String),
}

pub trait EventQueue {
    fn enqueue(
        &self,
        envelope: &Envelope<'_>,
    ) -> impl std::future::Future<Output = Result<(), QueueError>> + Send;
}
