//! Every pipeline decision, in-process, with the in-memory ports.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderName, HeaderValue};

use inlet_core::CompanyId;
use inlet_testing::memory::{MemoryDedupe, MemoryQueue, MemoryRateLimiter, MemorySources};
use inlet_webhooks::envelope::*;
use inlet_webhooks::intake::*;
use inlet_webhooks::providers::{Provider, SigningSecret};

const NOW_MS: i64 = 1_700_000_000_000;
const SECRET: &str = "whsec_pipeline_test";
const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.payment_failed","created":1699999990,"account":"acct_9","data":{"object":{"object":"invoice","id":"in_1"}}}"#;

type TestIntake = Intake<MemorySources, MemoryRateLimiter, MemoryDedupe, MemoryQueue>;

fn source(id: &str) -> Source {
    Source {
        source_id: id.to_owned(),
        provider: Provider::Stripe,
        tenant: TenantRule::Fixed(CompanyId::parse("co_1").unwrap()),
        secrets: vec![SourceSecret {
            secret: SigningSecret::new(SECRET),
            not_after_ms: None,
        }],
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        rate_limit: None,
        body_limit: DEFAULT_BODY_LIMIT,
        enabled: true,
    }
}

fn intake_with(sources: Vec<Source>, production: bool) -> TestIntake {
    Intake {
        config: IntakeConfig {
            provider: Provider::Stripe,
            production,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        },
        sources: MemorySources::with(sources),
        rate_limiter: MemoryRateLimiter::default(),
        dedupe: MemoryDedupe::default(),
        queue: MemoryQueue::default(),
    }
}

fn intake() -> TestIntake {
    intake_with(vec![source("src_1")], false)
}

fn signed(body: &[u8], secret: &str, now_ms: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in Provider::Stripe.sign(&SigningSecret::new(secret), body, now_ms / 1000, "")
    {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

async fn send<S: SourceStore>(
    intake: &Intake<S, MemoryRateLimiter, MemoryDedupe, MemoryQueue>,
    source_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> IntakeResponse {
    intake
        .handle(&IntakeRequest {
            source_id,
            headers,
            body,
            received_at_ms: now_ms,
            trace_id: Some("Root=1-abc"),
        })
        .await
}

async fn send_signed(intake: &TestIntake, body: &[u8]) -> IntakeResponse {
    send(intake, "src_1", &signed(body, SECRET, NOW_MS), body, NOW_MS).await
}

fn messages(intake: &TestIntake) -> Vec<Envelope<'static>> {
    intake.queue.messages.lock().unwrap().clone()
}

fn claims(intake: &TestIntake) -> usize {
    intake.dedupe.records.lock().unwrap().len()
}

fn problem_code(response: &IntakeResponse) -> String {
    assert_eq!(response.content_type, "application/problem+json");
    let doc: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(doc["status"], response.status);
    doc["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_valid_event_is_enqueued_once_as_envelope_v1_and_answered_202() {
    let intake = intake();
    let response = send_signed(&intake, BODY).await;
    assert_eq!(response.status, 202);
    let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "accepted", "event_id": "evt_1"})
    );

    let queued = messages(&intake);
    assert_eq!(queued.len(), 1);
    let envelope = &queued[0];
    assert_eq!(envelope.meta.version, 1);
    assert_eq!(
        (
            &*envelope.meta.source_id,
            &*envelope.meta.provider,
            &*envelope.meta.company_id
        ),
        ("src_1", "stripe", "co_1")
    );
    assert_eq!(
        (&*envelope.meta.event_id, &*envelope.meta.event_type),
        ("evt_1", "invoice.payment_failed")
    );
    assert_eq!(envelope.meta.object_id.as_deref(), Some("in_1"));
    assert_eq!(
        envelope.meta.occurred_at.as_deref(),
        Some("2023-11-14T22:13:10Z")
    );
    assert_eq!(envelope.meta.received_at, "2023-11-14T22:13:20Z");
    assert_eq!(
        envelope.body.as_ref(),
        BODY,
        "the raw body travels unchanged"
    );
    assert_eq!(
        envelope
            .meta
            .headers
            .get("content-type")
            .map(|value| &**value),
        Some("application/json")
    );
    assert!(
        !envelope.meta.headers.contains_key("stripe-signature"),
        "signatures are never carried"
    );
    assert_eq!(envelope.meta.trace_id.as_deref(), Some("Root=1-abc"));
    assert!(intake
        .dedupe
        .records
        .lock()
        .unwrap()
        .values()
        .all(|r| r.completed));
}

#[tokio::test]
async fn a_completed_event_sent_again_is_a_200_duplicate_and_not_enqueued() {
    let intake = intake();
    assert_eq!(send_signed(&intake, BODY).await.status, 202);
    for _ in 0..4 {
        let again = send_signed(&intake, BODY).await;
        assert_eq!(again.status, 200);
        assert!(again.body.contains(r#""status":"duplicate""#));
    }
    assert_eq!(messages(&intake).len(), 1);
}

#[tokio::test]
async fn an_event_in_progress_elsewhere_is_409_with_retry_after() {
    let intake = intake();
    intake
        .dedupe
        .claim(
            &dedupe_key("src_1", "evt_1"),
            &payload_hash(BODY),
            NOW_MS - 1000,
        )
        .await
        .unwrap();
    let response = send_signed(&intake, BODY).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (409, "in_progress")
    );
    assert_eq!(response.retry_after, Some(60));
    assert!(messages(&intake).is_empty());
}

#[tokio::test]
async fn an_expired_in_progress_lease_can_be_claimed_again() {
    let intake = intake();
    intake
        .dedupe
        .claim(
            &dedupe_key("src_1", "evt_1"),
            &payload_hash(BODY),
            NOW_MS - 61_000,
        )
        .await
        .unwrap();
    assert_eq!(send_signed(&intake, BODY).await.status, 202);
    assert_eq!(messages(&intake).len(), 1);
}

#[tokio::test]
async fn the_same_event_id_with_a_different_payload_is_409_and_not_enqueued() {
    let intake = intake();
    assert_eq!(send_signed(&intake, BODY).await.status, 202);
    let altered = br#"{"id":"evt_1","type":"invoice.paid","created":1699999990,"data":{"object":{"object":"invoice","id":"in_1"}}}"#;
    let response = send_signed(&intake, altered).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (409, "event_id_reused")
    );
    assert_eq!(messages(&intake).len(), 1);
}

#[tokio::test]
async fn oversized_bodies_are_413_before_the_source_is_looked_up() {
    let intake = intake();
    intake.sources.fail.store(true, Ordering::SeqCst);
    let big = vec![b' '; DEFAULT_BODY_LIMIT + 1];
    let response = send(
        &intake,
        "src_1",
        &signed(&big, SECRET, NOW_MS),
        &big,
        NOW_MS,
    )
    .await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (413, "payload_too_large")
    );
}

#[tokio::test]
async fn a_source_body_limit_below_the_global_one_is_enforced() {
    let mut small = source("src_1");
    small.body_limit = 100;
    let intake = intake_with(vec![small], false);
    let response = send_signed(&intake, BODY).await;
    assert_eq!(response.status, 413);
    assert_eq!((claims(&intake), messages(&intake).len()), (0, 0));
}

#[tokio::test]
async fn unknown_disabled_and_other_provider_sources_are_the_same_404() {
    let mut disabled = source("src_off");
    disabled.enabled = false;
    let mut github = source("src_gh");
    github.provider = Provider::Github;
    let intake = intake_with(vec![disabled, github], false);
    let mut bodies = Vec::new();
    for id in ["src_missing", "src_off", "src_gh", "../../etc", ""] {
        let response = send(&intake, id, &signed(BODY, SECRET, NOW_MS), BODY, NOW_MS).await;
        assert_eq!(
            (response.status, problem_code(&response).as_str()),
            (404, "source_not_found"),
            "{id}"
        );
        bodies.push(response.body);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "the 404s must not say which case applied");
}

#[tokio::test]
async fn requests_past_the_rate_limit_get_429_with_retry_after_and_change_nothing() {
    let mut limited = source("src_1");
    limited.rate_limit = Some(RateLimit {
        requests: 2,
        window_secs: 60,
    });
    let intake = intake_with(vec![limited], false);
    for n in 0..2 {
        let body = format!(r#"{{"id":"evt_{n}","type":"t","data":{{}}}}"#);
        assert_eq!(send_signed(&intake, body.as_bytes()).await.status, 202);
    }
    let response = send_signed(&intake, br#"{"id":"evt_x","type":"t"}"#).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (429, "rate_limited")
    );
    assert_eq!(
        response.retry_after,
        Some(41),
        "the window ends 40 s after NOW_MS"
    );
    assert_eq!((claims(&intake), messages(&intake).len()), (2, 2));
}

#[tokio::test]
async fn a_rate_limiter_outage_fails_closed_in_production_and_open_elsewhere() {
    let mut limited = source("src_1");
    limited.rate_limit = Some(RateLimit {
        requests: 10,
        window_secs: 60,
    });
    let production = intake_with(vec![limited.clone()], true);
    production.rate_limiter.fail.store(true, Ordering::SeqCst);
    let response = send_signed(&production, BODY).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (503, "rate_limiter_unavailable")
    );
    assert_eq!((claims(&production), messages(&production).len()), (0, 0));

    let development = intake_with(vec![limited], false);
    development.rate_limiter.fail.store(true, Ordering::SeqCst);
    assert_eq!(send_signed(&development, BODY).await.status, 202);
}

#[tokio::test]
async fn source_or_dedupe_store_outages_are_503_and_enqueue_nothing() {
    let intake = intake();
    intake.sources.fail.store(true, Ordering::SeqCst);
    let response = send_signed(&intake, BODY).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (503, "source_store_unavailable")
    );
    intake.sources.fail.store(false, Ordering::SeqCst);
    intake.dedupe.fail.store(true, Ordering::SeqCst);
    let response = send_signed(&intake, BODY).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (503, "dedupe_store_unavailable")
    );
    assert!(response.retry_after.is_some());
    assert!(messages(&intake).is_empty());
}

#[tokio::test]
async fn bad_signatures_are_401_with_a_stable_code_and_claim_nothing() {
    let intake = intake();
    let cases: Vec<(HeaderMap, &str)> = vec![
        (signed(BODY, "whsec_wrong", NOW_MS), "signature_mismatch"),
        (signed(BODY, SECRET, NOW_MS - 301_000), "timestamp_expired"),
        (
            signed(BODY, SECRET, NOW_MS + 301_000),
            "timestamp_in_future",
        ),
        (HeaderMap::new(), "signature_missing"),
        (
            [(
                http::header::HeaderName::from_static("stripe-signature"),
                HeaderValue::from_static("t=1,v1=zz"),
            )]
            .into_iter()
            .collect(),
            "signature_malformed",
        ),
    ];
    for (headers, code) in cases {
        let response = send(&intake, "src_1", &headers, BODY, NOW_MS).await;
        assert_eq!(
            (response.status, problem_code(&response).as_str()),
            (401, code)
        );
        assert!(
            !response.body.contains(SECRET) && !response.body.contains("v1="),
            "{}",
            response.body
        );
    }
    assert_eq!((claims(&intake), messages(&intake).len()), (0, 0));
}

#[tokio::test]
async fn a_rotated_out_secret_stops_verifying_after_its_not_after() {
    let mut rotating = source("src_1");
    rotating.secrets = vec![
        SourceSecret {
            secret: SigningSecret::new("whsec_old"),
            not_after_ms: Some(NOW_MS),
        },
        SourceSecret {
            secret: SigningSecret::new(SECRET),
            not_after_ms: None,
        },
    ];
    let intake = intake_with(vec![rotating], false);
    let before = send(
        &intake,
        "src_1",
        &signed(BODY, "whsec_old", NOW_MS - 1000),
        BODY,
        NOW_MS - 1000,
    )
    .await;
    assert_eq!(before.status, 202);
    let after = send(
        &intake,
        "src_1",
        &signed(b"{\"id\":\"evt_2\",\"type\":\"t\"}", "whsec_old", NOW_MS),
        b"{\"id\":\"evt_2\",\"type\":\"t\"}",
        NOW_MS,
    )
    .await;
    assert_eq!(after.status, 401);
}

#[tokio::test]
async fn events_without_identity_or_tenant_are_400_and_claim_nothing() {
    let mut by_pointer = source("src_1");
    by_pointer.tenant = TenantRule::Pointer("/account".into());
    let intake = intake_with(vec![by_pointer], false);
    for (body, code) in [
        (&br#"{"type":"x"}"#[..], "missing_event_field"),
        (b"not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (br#"{"id":"evt_1","type":"x"}"#, "tenant_missing"),
        (
            br#"{"id":"evt_1","type":"x","account":"has space"}"#,
            "tenant_missing",
        ),
    ] {
        let response = send_signed(&intake, body).await;
        assert_eq!(
            (response.status, problem_code(&response).as_str()),
            (400, code),
            "{body:?}"
        );
    }
    assert_eq!(
        send_signed(&intake, BODY).await.status,
        202,
        "/account names acct_9"
    );
    assert_eq!(messages(&intake)[0].meta.company_id, "acct_9");
    assert_eq!(claims(&intake), 1);
}

#[tokio::test]
async fn an_enqueue_failure_is_503_releases_the_claim_and_the_retry_succeeds() {
    let intake = intake();
    intake.queue.fail.store(true, Ordering::SeqCst);
    let response = send_signed(&intake, BODY).await;
    assert_eq!(
        (response.status, problem_code(&response).as_str()),
        (503, "enqueue_failed")
    );
    assert_eq!(claims(&intake), 0, "the claim must be released");
    intake.queue.fail.store(false, Ordering::SeqCst);
    assert_eq!(send_signed(&intake, BODY).await.status, 202);
    assert_eq!(messages(&intake).len(), 1);
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_its_challenge_and_not_enqueued() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let mut slack = source("src_slack");
    slack.provider = Provider::Slack;
    slack.secrets = vec![SourceSecret {
        secret: SigningSecret::new(secret),
        not_after_ms: None,
    }];
    let intake = Intake {
        config: IntakeConfig {
            provider: Provider::Slack,
            production: true,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        },
        ..intake_with(vec![slack], true)
    };
    let body = br#"{"token":"t","challenge":"c-123","type":"url_verification"}"#;
    let mut headers = HeaderMap::new();
    for (name, value) in Provider::Slack.sign(&SigningSecret::new(secret), body, NOW_MS / 1000, "")
    {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    let response = send(&intake, "src_slack", &headers, body, NOW_MS).await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (200, r#"{"challenge":"c-123"}"#)
    );
    assert!(messages(&intake).is_empty());
    // Unsigned, the handshake gets nothing.
    assert_eq!(
        send(&intake, "src_slack", &HeaderMap::new(), body, NOW_MS)
            .await
            .status,
        401
    );
}

#[test]
fn payload_hash_and_dedupe_key_keep_the_text_stored_records_were_written_with() {
    // Claims written by earlier deployments must still compare equal after an upgrade.
    for body in [&b""[..], BODY, &[0xff; 300][..]] {
        assert_eq!(
            payload_hash(body),
            format!("xxh3-128:{:032x}", xxhash_rust::xxh3::xxh3_128(body))
        );
    }
    assert_eq!(payload_hash(b"").len(), "xxh3-128:".len() + 32);
    assert_eq!(dedupe_key("src_1", "evt_1"), "src_1#evt_1");
}

/// A source store that counts its lookups (the DynamoDB reads a flood would cost).
#[derive(Default)]
struct CountingLookup {
    known: Vec<Source>,
    lookups: std::sync::atomic::AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl SourceLookup for CountingLookup {
    async fn fetch(&self, source_id: &str) -> Result<Option<Source>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError("throttled".into()));
        }
        Ok(self
            .known
            .iter()
            .find(|s| s.source_id == source_id)
            .cloned())
    }
}

fn cached_intake(
    known: Vec<Source>,
    miss_ttl: std::time::Duration,
) -> Intake<CachedSources<CountingLookup>, MemoryRateLimiter, MemoryDedupe, MemoryQueue> {
    Intake {
        config: IntakeConfig {
            provider: Provider::Stripe,
            production: true,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        },
        sources: CachedSources::new(
            CountingLookup {
                known,
                ..CountingLookup::default()
            },
            std::time::Duration::from_secs(30),
            miss_ttl,
        ),
        rate_limiter: MemoryRateLimiter::default(),
        dedupe: MemoryDedupe::default(),
        queue: MemoryQueue::default(),
    }
}

#[tokio::test]
async fn a_flood_of_unknown_source_ids_is_one_lookup_per_id_per_miss_ttl_and_all_404() {
    let ttl = std::time::Duration::from_millis(300);
    let intake = cached_intake(vec![], ttl);
    let headers = signed(BODY, SECRET, NOW_MS);
    let lookups = || intake.sources.inner().lookups.load(Ordering::SeqCst);
    for round in 0..1000 {
        let id = format!("src_unknown_{}", round % 10);
        let answer = send(&intake, &id, &headers, BODY, NOW_MS).await;
        assert_eq!(
            (answer.status, answer.code),
            (404, Some("source_not_found"))
        );
    }
    assert_eq!(lookups(), 10, "1,000 requests for 10 unknown ids");
    tokio::time::sleep(ttl + std::time::Duration::from_millis(50)).await;
    for round in 0..1000 {
        let id = format!("src_unknown_{}", round % 10);
        assert_eq!(send(&intake, &id, &headers, BODY, NOW_MS).await.status, 404);
    }
    assert_eq!(lookups(), 20, "once more per id after the miss TTL");
    assert!(intake.queue.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_ids_never_push_a_known_source_out_and_a_new_source_shows_after_the_miss_ttl() {
    let intake = cached_intake(vec![source("src_1")], std::time::Duration::from_secs(30));
    let headers = signed(BODY, SECRET, NOW_MS);
    let lookups = || intake.sources.inner().lookups.load(Ordering::SeqCst);
    assert_eq!(
        send(&intake, "src_1", &headers, BODY, NOW_MS).await.status,
        202
    );
    assert_eq!(lookups(), 1);
    // More distinct unknown ids than either cache holds.
    for n in 0..5000 {
        assert_eq!(
            send(&intake, &format!("src_x{n}"), &headers, BODY, NOW_MS)
                .await
                .status,
            404
        );
    }
    assert_eq!(lookups(), 5001);
    let again = signed(br#"{"id":"evt_2","type":"invoice.paid"}"#, SECRET, NOW_MS);
    assert_eq!(
        send(
            &intake,
            "src_1",
            &again,
            br#"{"id":"evt_2","type":"invoice.paid"}"#,
            NOW_MS
        )
        .await
        .status,
        202
    );
    assert_eq!(lookups(), 5001, "the known source was still cached");
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_asked_again_not_remembered_as_unknown() {
    let intake = cached_intake(vec![source("src_1")], std::time::Duration::from_secs(30));
    let headers = signed(BODY, SECRET, NOW_MS);
    intake.sources.inner().down.store(true, Ordering::SeqCst);
    assert_eq!(
        send(&intake, "src_1", &headers, BODY, NOW_MS).await.code,
        Some("source_store_unavailable")
    );
    intake.sources.inner().down.store(false, Ordering::SeqCst);
    assert_eq!(
        send(&intake, "src_1", &headers, BODY, NOW_MS).await.status,
        202
    );
    assert_eq!(intake.sources.inner().lookups.load(Ordering::SeqCst), 2);
}
