//! The intake pipeline with in-memory ports, as the CPU benchmarks run it (the criterion bench
//! and `intake-instructions` under callgrind): every request takes the accept path, the ports
//! never wait, so one poll completes it and no executor is in the figure.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use inlet_core::CompanyId;
use inlet_testing::memory::MemorySources;
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{
    Claim, DedupeStore, EventQueue, Intake, IntakeConfig, QueueError, RateDecision, RateLimit,
    RateLimiter, Source, SourceSecret, StoreError, TenantRule, DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::{Provider, SigningSecret};
use sha2::Sha256;

pub const SECRET: &str = "whsec_benchmark_secret_0123456789";
pub const NOW_MS: i64 = 1_700_000_000_000;
pub const SOURCE: &str = "src_bench";

/// Polls a future once; the in-memory ports never wait.
///
/// # Panics
/// If a port returned `Pending` (a bench set-up error, not an input).
pub fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an in-memory port returned Pending"),
    }
}

/// Every claim succeeds, so each iteration takes the full accept path.
pub struct FreshClaims;

impl DedupeStore for FreshClaims {
    async fn claim(&self, _: &str, _: &str, _: i64) -> Result<Claim, StoreError> {
        Ok(Claim::Claimed)
    }
    async fn complete(&self, _: &str, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn release(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

pub struct Unlimited;

impl RateLimiter for Unlimited {
    async fn hit(&self, _: &str, _: &RateLimit, _: i64) -> Result<RateDecision, StoreError> {
        Ok(RateDecision::Allowed)
    }
}

/// The in-memory queue port: takes the envelope and drops it.
pub struct DiscardingQueue;

impl EventQueue for DiscardingQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        black_box(envelope);
        Ok(())
    }
}

/// Also serialises the envelope as the SQS adapter does, then drops it.
pub struct SerializingQueue;

impl EventQueue for SerializingQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        black_box(envelope.to_json());
        Ok(())
    }
}

/// A Stripe event of about `size` bytes with a fixed id.
pub fn stripe_event(size: usize) -> Vec<u8> {
    crate::samples::stripe_event(size, "evt_1PbenchAbCdEf")
}

/// Stripe's headers for `body`, signed at [`NOW_MS`].
pub fn signed_headers(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in Provider::Stripe.sign(&SigningSecret::new(SECRET), body, NOW_MS / 1000, "")
    {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

pub type BenchIntake<Q> = Intake<MemorySources, Unlimited, FreshClaims, Q>;

/// A Stripe intake with one fixed-tenant source (with a rate limit, so the limiter is asked).
///
/// # Panics
/// Never: the company id is a valid constant.
pub fn intake_with<Q: EventQueue>(queue: Q) -> BenchIntake<Q> {
    Intake {
        config: IntakeConfig {
            provider: Provider::Stripe,
            production: true,
            max_body_bytes: 256 * 1024,
        },
        sources: MemorySources::with([Source {
            source_id: SOURCE.into(),
            provider: Provider::Stripe,
            tenant: TenantRule::Fixed(
                CompanyId::parse("co_bench").unwrap_or_else(|_| unreachable!("a valid id")),
            ),
            secrets: vec![SourceSecret {
                secret: SigningSecret::new(SECRET),
                not_after_ms: None,
            }],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            rate_limit: Some(RateLimit {
                requests: u32::MAX,
                window_secs: 60,
            }),
            body_limit: 256 * 1024,
            enabled: true,
        }]),
        rate_limiter: Unlimited,
        dedupe: FreshClaims,
        queue,
    }
}

/// What any Stripe verifier pays: HMAC-SHA256 over `"{t}." + body`.
pub fn hmac_floor(body: &[u8]) -> impl Sized {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"1700000000.");
    mac.update(black_box(body));
    black_box(mac.finalize().into_bytes())
}
