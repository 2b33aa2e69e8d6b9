//! The domain's doors to the outside: one trait per capability. Adapters (inlet-adapters)
//! implement them; tests implement them in memory. Nothing here names AWS, HTTP or Lambda.

use std::future::Future;
use std::pin::Pin;

use inlet_core::{DeadLetterCode, StoreError};

use crate::reminders::ReminderJob;

/// A boxed future: delivery channels are chosen at run time (an email channel may be absent).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A queue record on its way to a dead-letter queue, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    pub message_id: &'a str,
    /// The record's body, byte for byte.
    pub body: &'a str,
    /// The queue it came from (an ARN), so it can be redriven there.
    pub source_queue: Option<&'a str>,
    /// The record's own string attributes (provider, company, ...), carried along.
    pub attributes: Vec<(&'a str, &'a str)>,
    pub code: DeadLetterCode,
    /// Bounded, never a payload.
    pub reason: &'a str,
}

/// Sends a record to its dead-letter queue.
pub trait DeadLetters {
    fn send(&self, letter: &DeadLetter<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where a received record can be found again: to change its visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt<'a> {
    pub message_id: &'a str,
    pub queue: Option<&'a str>,
    pub handle: Option<&'a str>,
}

/// Hides a record from consumers for a while (its visibility timeout).
pub trait Visibility {
    fn delay(
        &self,
        receipt: &Receipt<'_>,
        seconds: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The reminders queue: sends up to ten jobs, returns the keys that did not make it.
pub trait ReminderQueue {
    fn send_batch(
        &self,
        jobs: &[ReminderJob],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// The exports queue: privacy export jobs for the export function.
pub trait ExportQueue {
    fn send(
        &self,
        job: &crate::privacy::ExportMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where finished exports are kept: a link to one that works for `ttl`.
pub trait ExportFiles {
    fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// What a receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// Seconds, from a `Retry-After` header.
    pub retry_after: Option<u32>,
}

/// Why a delivery got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    Timeout,
    /// Connection refused, reset, DNS failure: the network, not the receiver's verdict.
    Connection,
    /// The endpoint is a private, loopback or link-local address (production refuses them).
    PrivateAddress,
    /// The channel refused the message for good (an email provider's rejection).
    Rejected,
    /// The endpoint's URL is not a URL.
    InvalidUrl,
}

impl DeliveryError {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryError::Timeout => "timeout",
            DeliveryError::Connection => "connection failed",
            DeliveryError::PrivateAddress => "private address refused",
            DeliveryError::Rejected => "rejected",
            DeliveryError::InvalidUrl => "invalid URL",
        }
    }
}

/// One delivery attempt: the answer or why there was none, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub answer: Result<Answer, DeliveryError>,
    pub latency_ms: i32,
}

/// A signed webhook POST to a company's endpoint.
pub trait WebhookChannel: Send + Sync {
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Delivery>;
}

/// An email to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

pub trait EmailChannel: Send + Sync {
    fn send<'a>(&'a self, email: &'a Email<'a>) -> BoxFuture<'a, Delivery>;
}

/// What a circuit breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: deliver.
    Allowed,
    /// Half-open: this caller delivers the one probe.
    Probe,
    /// Open: do not deliver; try again after this many seconds.
    Open { retry_after_secs: u32 },
}

/// A circuit per endpoint, shared by every container that delivers to it.
pub trait CircuitBreaker: Send + Sync {
    fn admit<'a>(
        &'a self,
        circuit: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<Admission, StoreError>>;
    /// A delivery the endpoint failed (timeout, 5xx, 429); `probe` when it was the probe.
    fn failed<'a>(
        &'a self,
        circuit: &'a str,
        probe: bool,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A delivery the endpoint answered well enough (2xx, or a 4xx that says no).
    fn succeeded<'a>(
        &'a self,
        circuit: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// How loud an operator alert is: `warn` goes to the warning channel, `page` wakes someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warn,
    Page,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warn => "warn",
            Severity::Page => "page",
        }
    }
}

/// The operators' channels (SNS topics in AWS).
pub trait Alerts: Send + Sync {
    fn publish<'a>(
        &'a self,
        severity: Severity,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A message read from a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMessage {
    pub message_id: String,
    pub body: String,
    /// When it was sent to the dead-letter queue (SQS's `SentTimestamp`), Unix ms.
    pub sent_at_ms: i64,
    /// SQS's `ApproximateReceiveCount`.
    pub receive_count: u32,
    /// Its string message attributes (`inlet_error_code`, `provider`, `company_id`, ...).
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A message received (hidden) from a queue, with the handle to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub message: DeadMessage,
    pub receipt: String,
}

/// Reading and moving dead letters. `queue` is a queue URL.
pub trait DeadLetterQueue: Send + Sync {
    /// Up to ten messages, hidden from others for `hide_secs`.
    fn receive(
        &self,
        queue: &str,
        hide_secs: i32,
    ) -> impl Future<Output = Result<Vec<Received>, StoreError>> + Send;
    /// Makes received messages visible again at once.
    fn release(
        &self,
        queue: &str,
        receipts: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete(
        &self,
        queue: &str,
        receipt: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Sends a copy (body and the given attributes) to `queue`.
    fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: &std::collections::BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The queue's approximate number of visible messages, where the store can tell.
    fn depth(&self, queue: &str) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        let _ = queue;
        std::future::ready(Ok(None))
    }
}

/// The webhook sources, for a tenant managing its own (rotate a secret, disable). `source_id`
/// is a source's id; a source not found is `None`.
pub trait SourceAdmin: Send + Sync {
    fn fetch(
        &self,
        source_id: &str,
    ) -> impl Future<Output = Result<Option<inlet_webhooks::intake::Source>, StoreError>> + Send;
    fn put(
        &self,
        source: &inlet_webhooks::intake::Source,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
