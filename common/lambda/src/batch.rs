//! The SQS batch runner every queue consumer uses: Lambda's SQS event in, the partial-batch
//! response (ReportBatchItemFailures) out.
//!
//! Records are handled one at a time (one database connection per container), each in a tracing
//! span carrying its message id. What a handler returns decides what happens to the record:
//!
//! - `Ok` -> acknowledged (left out of the batch failures, so Lambda deletes it);
//! - [`Failure::Permanent`] -> sent to the queue's DLQ at once with its class and reason as
//!   message attributes, then acknowledged: retrying cannot help;
//! - [`Failure::Transient`] -> its visibility timeout set to an exponential backoff with full
//!   jitter from `ApproximateReceiveCount`, then reported failed; after maxReceiveCount SQS
//!   itself redrives it to the DLQ;
//! - [`Failure::TransientBatch`] -> the same for this record and every record not yet handled:
//!   when the database is unreachable the rest would fail too, so the batch stops instead of
//!   burning each record's retries.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tracing::Instrument;

use inlet_core::{Failure, Permanent};
use inlet_domain::ports::{DeadLetter, DeadLetters, Receipt, Visibility};

/// Exponential backoff with full jitter: a delay drawn uniformly from 1 s to
/// `min(max, base * 2^(receive_count - 1))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_secs: u32,
    pub max_secs: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base_secs: 2,
            max_secs: 900,
        }
    }
}

/// SQS's largest visibility timeout.
const MAX_VISIBILITY_SECS: u32 = 43_200;

impl Backoff {
    /// The ceiling for the `receive_count`-th receive (1 = first delivery).
    pub fn ceiling_secs(&self, receive_count: u32) -> u32 {
        let doublings = receive_count.saturating_sub(1).min(31);
        let grown = u64::from(self.base_secs.max(1)) << doublings;
        let capped = grown.min(u64::from(self.max_secs.clamp(1, MAX_VISIBILITY_SECS)));
        u32::try_from(capped).unwrap_or(MAX_VISIBILITY_SECS)
    }

    /// A delay for the `receive_count`-th receive, from a uniformly random `draw`.
    pub fn delay_secs(&self, receive_count: u32, draw: u32) -> u32 {
        1 + draw % self.ceiling_secs(receive_count)
    }
}

/// What became of one record in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Handled: acknowledged.
    Done,
    /// Sent to the dead-letter queue, then acknowledged.
    DeadLettered,
    /// Reported failed: it comes back after its delay.
    Retrying,
}

/// What a batch did, one entry per record in batch order: for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub settled: Vec<Settled>,
}

impl BatchStats {
    fn count(&self, which: Settled) -> usize {
        self.settled.iter().filter(|s| **s == which).count()
    }

    pub fn succeeded(&self) -> usize {
        self.count(Settled::Done)
    }

    pub fn permanent(&self) -> usize {
        self.count(Settled::DeadLettered)
    }

    pub fn transient(&self) -> usize {
        self.count(Settled::Retrying)
    }

    /// The batch as invocation metrics: records done are successes, records dead-lettered or
    /// left to retry failures, and the latter retries.
    pub fn invocation(&self, duration: std::time::Duration) -> crate::metrics::Invocation {
        crate::metrics::Invocation {
            duration,
            success: self.succeeded() as u64,
            failure: (self.permanent() + self.transient()) as u64,
            retries: self.transient() as u64,
        }
    }
}

/// Runs batches with the DLQ and visibility ports of one queue.
pub struct BatchRunner<P> {
    pub ports: P,
    pub backoff: Backoff,
}

/// How many times SQS has delivered this record (1 on the first delivery).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

fn random_draw() -> u32 {
    let bytes = inlet_core::crypto::random_bytes(4);
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Reasons go into message attributes and logs: bounded, and never a payload.
fn bounded(reason: &str) -> &str {
    match reason.char_indices().nth(256) {
        Some((index, _)) => &reason[..index],
        None => reason,
    }
}

impl<P: DeadLetters + Visibility> BatchRunner<P> {
    /// Handles every record of `event`; returns the failures to report and what happened.
    pub async fn run<F>(&self, event: &SqsEvent, mut handle: F) -> (SqsBatchResponse, BatchStats)
    where
        F: AsyncFnMut(&SqsMessage) -> Result<(), Failure>,
    {
        let mut response = SqsBatchResponse::default();
        let mut stats = BatchStats {
            settled: Vec::with_capacity(event.records.len()),
        };
        let mut stopped: Option<String> = None;
        for message in &event.records {
            let message_id = message.message_id.clone().unwrap_or_default();
            let span = tracing::info_span!("record", message_id = %message_id, receive_count = receive_count(message));
            let outcome = match &stopped {
                // After a batch-wide failure the rest are not attempted, only delayed.
                Some(reason) => Err(Failure::Transient(reason.clone())),
                None => handle(message).instrument(span.clone()).await,
            };
            if let Err(Failure::TransientBatch(reason)) = &outcome {
                tracing::warn!(parent: &span, reason = %bounded(reason), "batch stopped; every remaining record retries later");
                stopped = Some(bounded(reason).to_owned());
            }
            let settled = self.settle(message, outcome).instrument(span).await;
            if settled == Settled::Retrying {
                response.add_failure(message_id);
            }
            stats.settled.push(settled);
        }
        (response, stats)
    }

    /// Acts on one record's outcome.
    async fn settle(&self, message: &SqsMessage, outcome: Result<(), Failure>) -> Settled {
        match outcome {
            Ok(()) => Settled::Done,
            Err(Failure::Permanent(Permanent { code, reason })) => {
                let reason = bounded(&reason);
                let letter = DeadLetter {
                    message_id: message.message_id.as_deref().unwrap_or_default(),
                    body: message.body.as_deref().unwrap_or_default(),
                    source_queue: message.event_source_arn.as_deref(),
                    attributes: message
                        .message_attributes
                        .iter()
                        .filter_map(|(name, value)| {
                            Some((name.as_str(), value.string_value.as_deref()?))
                        })
                        .collect(),
                    code,
                    reason,
                };
                match self.ports.send(&letter).await {
                    Ok(()) => {
                        tracing::warn!(class = code.class().as_str(), %code, %reason, "record sent to the dead-letter queue");
                        Settled::DeadLettered
                    }
                    Err(error) => {
                        // Not lost: it stays on the queue and comes back.
                        tracing::error!(%error, %reason, "dead-letter send failed; the record will be retried");
                        self.retry_later(message).await;
                        Settled::Retrying
                    }
                }
            }
            Err(Failure::Transient(reason) | Failure::TransientBatch(reason)) => {
                tracing::warn!(class = "transient", reason = %bounded(&reason), "record failed; retrying later");
                self.retry_later(message).await;
                Settled::Retrying
            }
            Err(Failure::RetryAfter { reason, seconds }) => {
                tracing::warn!(class = "transient", reason = %bounded(&reason), seconds, "record failed; retrying after the delay asked for");
                let backoff = self
                    .backoff
                    .delay_secs(receive_count(message), random_draw());
                self.delay(message, seconds.max(backoff).min(MAX_VISIBILITY_SECS))
                    .await;
                Settled::Retrying
            }
        }
    }

    async fn retry_later(&self, message: &SqsMessage) {
        let seconds = self
            .backoff
            .delay_secs(receive_count(message), random_draw());
        self.delay(message, seconds).await;
    }

    async fn delay(&self, message: &SqsMessage, seconds: u32) {
        let receipt = Receipt {
            message_id: message.message_id.as_deref().unwrap_or_default(),
            queue: message.event_source_arn.as_deref(),
            handle: message.receipt_handle.as_deref(),
        };
        if let Err(error) = self.ports.delay(&receipt, seconds).await {
            // The queue's own visibility timeout then applies.
            tracing::warn!(%error, "could not set the retry delay");
        }
    }
}

#[cfg(test)]
mod tests;
