//! The intake pipeline, generic over its ports so every decision is testable in-process.
//!
//! Order (DESIGN.md): body limit (413) -> source (404) -> rate limit (429) -> signature on the
//! raw bytes (401) -> identity (400) -> dedupe claim (200 duplicate / 409) -> enqueue (503 and
//! claim released on failure) -> complete -> 202.

mod cache;
pub mod demo;
pub mod json_pointer;
mod ports;
mod response;
mod source;

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::HeaderMap;

use crate::envelope::{BodyEncoding, Envelope, EnvelopeMeta, ENVELOPE_VERSION};
pub use cache::{CachedSources, SourceLookup};
use inlet_core::clock::rfc3339_ms;
pub use ports::{
    Claim, DedupeStore, EventQueue, QueueError, RateDecision, RateLimiter, SourceStore, StoreError,
};
pub use response::IntakeResponse;
pub use source::{
    RateLimit, RateWindow, Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT,
    DEFAULT_TOLERANCE_SECS,
};

use crate::providers::{Provider, SigningSecret, VerifyOptions, COMMON_CARRIED_HEADERS};
use inlet_core::CompanyId;

/// One webhook request as the gateway delivered it.
#[derive(Debug)]
pub struct IntakeRequest<'a> {
    /// The `{source_id}` path parameter.
    pub source_id: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// When the request arrived, Unix milliseconds.
    pub received_at_ms: i64,
    pub trace_id: Option<&'a str>,
}

/// Settings fixed per function at cold start.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// The provider this function serves (one function per provider route).
    pub provider: Provider,
    /// `INLET_ENV=production`: fail closed when the rate limiter cannot answer.
    pub production: bool,
    /// Upper bound before the source is known; a source may set a lower one.
    pub max_body_bytes: usize,
}

/// The pipeline with its ports.
pub struct Intake<S, R, D, Q> {
    pub config: IntakeConfig,
    pub sources: S,
    pub rate_limiter: R,
    pub dedupe: D,
    pub queue: Q,
}

impl<S, R, D, Q> Intake<S, R, D, Q>
where
    S: SourceStore,
    R: RateLimiter,
    D: DedupeStore,
    Q: EventQueue,
{
    /// The whole pipeline, completion included: [`Intake::accept`] then [`Intake::complete`].
    pub async fn handle(&self, request: &IntakeRequest<'_>) -> IntakeResponse {
        let (response, completion) = self.accept(request).await;
        if let Some(completion) = completion {
            self.complete(completion).await;
        }
        response
    }

    /// The pipeline up to the answer. An accepted event is on the queue when this returns; what
    /// is left (marking its dedupe record completed) comes back as a [`Completion`] that the
    /// caller must run, after answering if it can (a Lambda runtime can: after posting the
    /// response and before asking for the next event).
    pub async fn accept(
        &self,
        request: &IntakeRequest<'_>,
    ) -> (IntakeResponse, Option<Completion>) {
        let mut completion = None;
        let response = self.decide(request, &mut completion).await;
        if let Some(code) = response.code {
            tracing::info!(
                source_id = %safe_id(request.source_id),
                provider = %self.config.provider,
                status = response.status,
                code,
                "webhook refused"
            );
        }
        (response, completion)
    }

    /// Marks an accepted event's dedupe record completed, so later duplicates are answered 200
    /// at once. If it fails (or never runs), the record stays INPROGRESS until its lease ends:
    /// a duplicate meanwhile gets 409 `in_progress`, one after it re-claims and re-enqueues,
    /// and the consumer's ledger drops the copy. Never an event lost or applied twice.
    pub async fn complete(&self, completion: Completion) {
        if let Err(error) = self
            .dedupe
            .complete(&completion.key, &completion.payload_hash, completion.now_ms)
            .await
        {
            tracing::warn!(%error, "could not mark the dedupe record completed");
        }
    }

    /// The answer; for an accepted event also what is left to do, in `completion`.
    async fn decide(
        &self,
        request: &IntakeRequest<'_>,
        completion: &mut Option<Completion>,
    ) -> IntakeResponse {
        let provider = self.config.provider;
        let now_ms = request.received_at_ms;

        // 1. Size, before anything is looked up or parsed.
        if request.body.len() > self.config.max_body_bytes {
            return too_large();
        }

        // 2. The source: unknown, disabled or another provider's all look the same.
        let source = match self.sources.get(request.source_id).await {
            Ok(Some(source)) if source.enabled && source.provider == provider => source,
            Ok(_) => {
                return IntakeResponse::problem(404, "source_not_found", "No such webhook source")
            }
            Err(error) => {
                tracing::error!(%error, "source store unavailable");
                return unavailable("source_store_unavailable");
            }
        };
        if request.body.len() > source.body_limit {
            return too_large();
        }

        // 3. Rate limit, before any CPU is spent on signatures.
        if let Some(limit) = &source.rate_limit {
            match self
                .rate_limiter
                .hit(&source.source_id, limit, now_ms)
                .await
            {
                Ok(RateDecision::Allowed) => {}
                Ok(RateDecision::Limited { retry_after_secs }) => {
                    return IntakeResponse::problem(
                        429,
                        "rate_limited",
                        "Too many requests for this source",
                    )
                    .with_retry_after(retry_after_secs);
                }
                Err(error) if self.config.production => {
                    tracing::error!(%error, "rate limiter unavailable; failing closed");
                    return unavailable("rate_limiter_unavailable");
                }
                Err(error) => {
                    tracing::warn!(%error, "rate limiter unavailable; failing open outside production");
                }
            }
        }

        // 4. Signature on the raw bytes.
        let secrets: smallvec::SmallVec<[&SigningSecret; 4]> =
            source.active_secrets(now_ms).collect();
        let options = VerifyOptions {
            now: now_ms.div_euclid(1000),
            tolerance_secs: source.tolerance_secs,
        };
        if let Err(error) = provider.verify(request.headers, request.body, &secrets, options) {
            // The security log: the reason code only, never the secret, signature or body.
            tracing::warn!(
                target: "security",
                source_id = %source.source_id,
                provider = %provider,
                reason = error.code(),
                "webhook signature rejected"
            );
            return IntakeResponse::problem(
                401,
                error.code(),
                "The webhook signature could not be verified",
            );
        }
        if let Some(challenge) = provider.handshake(request.body) {
            return IntakeResponse::challenge(&challenge);
        }

        // 5. Identity and tenant.
        let identity = match provider.identify(request.headers, request.body) {
            Ok(identity) => identity,
            Err(error) => return IntakeResponse::problem(400, error.code(), &error.to_string()),
        };
        let company = match source.tenant.resolve(request.body) {
            Some(company) => company,
            None => {
                return IntakeResponse::problem(
                    400,
                    "tenant_missing",
                    "The event does not name a known tenant",
                )
            }
        };

        // 6. Dedupe claim.
        let key = dedupe_key(&source.source_id, &identity.event_id);
        let payload_hash = payload_hash(request.body);
        match self.dedupe.claim(&key, &payload_hash, now_ms).await {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Existing {
                payload_hash: seen, ..
            }) if seen != payload_hash => {
                tracing::warn!(
                    target: "security",
                    source_id = %source.source_id,
                    provider = %provider,
                    event_id = %identity.event_id,
                    reason = "event_id_reused",
                    "same event id with a different payload"
                );
                return IntakeResponse::problem(
                    409,
                    "event_id_reused",
                    "This event id was already used for a different payload",
                );
            }
            Ok(Claim::Existing {
                completed: true, ..
            }) => return IntakeResponse::duplicate(&identity.event_id),
            Ok(Claim::Existing {
                completed: false,
                retry_after_secs,
                ..
            }) => {
                return IntakeResponse::problem(
                    409,
                    "in_progress",
                    "This event is being accepted right now; retry shortly",
                )
                .with_retry_after(retry_after_secs);
            }
            Err(error) => {
                tracing::error!(%error, "dedupe store unavailable");
                return unavailable("dedupe_store_unavailable");
            }
        }

        // 7. Enqueue; on failure release the claim so the provider's retry succeeds.
        let envelope = Envelope {
            meta: EnvelopeMeta {
                version: ENVELOPE_VERSION,
                source_id: Cow::Borrowed(&source.source_id),
                provider: Cow::Borrowed(provider.as_str()),
                company_id: match company {
                    Cow::Borrowed(company) => Cow::Borrowed(company.as_str()),
                    Cow::Owned(company) => Cow::Owned(company.into_string()),
                },
                event_id: identity.event_id,
                event_type: identity.event_type,
                object_type: identity.object_type,
                object_id: identity.object_id,
                occurred_at: identity.occurred_at_ms.and_then(rfc3339_ms),
                received_at: rfc3339_ms(now_ms).unwrap_or_default(),
                headers: carried_headers(provider, request.headers),
                trace_id: request.trace_id.map(Cow::Borrowed),
                body_encoding: BodyEncoding::for_body(request.body, identity.body_is_json),
                replay: false,
            },
            body: Cow::Borrowed(request.body),
        };
        if let Err(error) = self.queue.enqueue(&envelope).await {
            if let Err(release_error) = self.dedupe.release(&key).await {
                // The claim's lease expires on its own; the retry then succeeds.
                tracing::error!(error = %release_error, "could not release the dedupe claim");
            }
            return match error {
                QueueError::TooLarge => too_large(),
                QueueError::Unavailable(error) => {
                    tracing::error!(%error, "enqueue failed; claim released");
                    unavailable("enqueue_failed")
                }
            };
        }

        // 8. Accepted: the event is on the queue. Marking the record completed is left to the
        // caller (see `accept`).
        tracing::info!(
            source_id = %source.source_id,
            provider = %provider,
            company_id = %envelope.meta.company_id,
            event_id = %envelope.meta.event_id,
            event_type = %envelope.meta.event_type,
            "webhook accepted"
        );
        let response = IntakeResponse::accepted(&envelope.meta.event_id);
        *completion = Some(Completion {
            key,
            payload_hash,
            now_ms,
        });
        response
    }
}

/// What is left of an accepted request after its answer: its dedupe record to mark completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    key: String,
    payload_hash: String,
    now_ms: i64,
}

/// The dedupe record's `validation`: XXH3-128 of the raw body, prefixed with its algorithm.
///
/// It only compares two bodies that both passed HMAC verification with the source's secret, to
/// catch a sender reusing an event id for other content; nobody without the secret reaches the
/// comparison and anybody with it can sign anything, so collision resistance buys nothing here
/// (Powertools uses MD5 for the same field). XXH3 costs a fraction of a second SHA-256 pass.
pub fn payload_hash(body: &[u8]) -> String {
    // Big-endian bytes in lowercase hex, the text `{:032x}` gives, built on the stack.
    let hash = xxhash_rust::xxh3::xxh3_128(body);
    let mut digits = [0u8; 32];
    let hex = hex::encode_to_slice(hash.to_be_bytes(), &mut digits)
        .ok()
        .and_then(|()| std::str::from_utf8(&digits).ok());
    match hex {
        Some(hex) => ["xxh3-128:", hex].concat(),
        None => format!("xxh3-128:{hash:032x}"),
    }
}

/// The idempotency key: a provider event id is unique per source.
pub fn dedupe_key(source_id: &str, event_id: &str) -> String {
    [source_id, "#", event_id].concat()
}

fn too_large() -> IntakeResponse {
    IntakeResponse::problem(
        413,
        "payload_too_large",
        "The request body is larger than this source accepts",
    )
}

fn unavailable(code: &'static str) -> IntakeResponse {
    IntakeResponse::problem(
        503,
        code,
        "Temporarily unable to accept webhooks; retry later",
    )
    .with_retry_after(5)
}

/// One pass over the request's headers (there are few), keeping the ones the consumer may
/// need (never a signature header), borrowed.
fn carried_headers(
    provider: Provider,
    headers: &HeaderMap,
) -> BTreeMap<Cow<'_, str>, Cow<'_, str>> {
    let mut carried = BTreeMap::new();
    let wanted = |name: &str| {
        COMMON_CARRIED_HEADERS.contains(&name) || provider.carried_headers().contains(&name)
    };
    for (name, value) in headers {
        if !wanted(name.as_str()) || value.len() > 512 {
            continue;
        }
        if let Ok(value) = value.to_str() {
            carried.insert(Cow::Borrowed(name.as_str()), Cow::Borrowed(value));
        }
    }
    carried
}

/// A path parameter for a log line: only if it is a plain id.
fn safe_id(value: &str) -> &str {
    if CompanyId::parse(value).is_ok() {
        value
    } else {
        "<invalid>"
    }
}
