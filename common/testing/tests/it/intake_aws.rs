//! The intake pipeline with its real adapters: DynamoDB and SQS through the AWS SDK, against
//! the moto emulator that `make test` starts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use http::{HeaderMap, HeaderName, HeaderValue};
use inlet_adapters::aws::{DynamoDedupe, DynamoRateLimiter, DynamoSources, SqsQueue};
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_lambda::webhook::LiveIntake;
use inlet_testing::{AwsFixture, TEST_KEYS};
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{
    CachedSources, Claim, DedupeStore, Intake, IntakeConfig, IntakeRequest, IntakeResponse,
    RateLimit, Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::{Provider, SigningSecret};

const SECRET: &str = "whsec_integration_secret";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

fn stripe_source(id: &str, rate_limit: Option<RateLimit>) -> Source {
    Source {
        source_id: id.to_owned(),
        provider: Provider::Stripe,
        tenant: TenantRule::Fixed(CompanyId::parse("co_it").unwrap()),
        secrets: vec![SourceSecret {
            secret: SigningSecret::new(SECRET),
            not_after_ms: None,
        }],
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        rate_limit,
        body_limit: DEFAULT_BODY_LIMIT,
        enabled: true,
    }
}

fn live(fx: &AwsFixture, production: bool) -> LiveIntake {
    Intake {
        config: IntakeConfig {
            provider: Provider::Stripe,
            production,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        },
        sources: CachedSources::new(
            DynamoSources::new(fx.dynamodb.clone(), &fx.sources_table, keys()),
            Duration::from_secs(30),
            Duration::from_secs(5),
        ),
        rate_limiter: DynamoRateLimiter::new(fx.dynamodb.clone(), &fx.rate_limit_table),
        dedupe: DynamoDedupe::new(fx.dynamodb.clone(), &fx.idempotency_table, 60_000, 604_800),
        queue: SqsQueue::new(fx.sqs.clone(), &fx.events_queue_url, 1_048_576),
    }
}

async fn setup(rate_limit: Option<RateLimit>) -> (AwsFixture, LiveIntake) {
    let fx = AwsFixture::create().await;
    let intake = live(&fx, false);
    intake
        .sources
        .inner()
        .put(&stripe_source("src_it", rate_limit))
        .await
        .unwrap();
    (fx, intake)
}

fn event(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","type":"invoice.payment_failed","created":1700000000,"data":{{"object":{{"object":"invoice","id":"in_{id}"}}}}}}"#).into_bytes()
}

fn signed(body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in
        Provider::Stripe.sign(&SigningSecret::new(SECRET), body, now_ms() / 1000, "")
    {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    headers
}

async fn post<S, R, D, Q>(intake: &Intake<S, R, D, Q>, body: &[u8]) -> IntakeResponse
where
    S: inlet_webhooks::intake::SourceStore,
    R: inlet_webhooks::intake::RateLimiter,
    D: inlet_webhooks::intake::DedupeStore,
    Q: inlet_webhooks::intake::EventQueue,
{
    let headers = signed(body);
    intake
        .handle(&IntakeRequest {
            source_id: "src_it",
            headers: &headers,
            body,
            received_at_ms: now_ms(),
            trace_id: None,
        })
        .await
}

async fn idempotency_item(
    fx: &AwsFixture,
    key: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    fx.dynamodb
        .get_item()
        .table_name(&fx.idempotency_table)
        .key("id", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

#[tokio::test]
async fn sources_round_trip_with_secrets_sealed_at_rest() {
    let (fx, intake) = setup(Some(RateLimit {
        requests: 5,
        window_secs: 10,
    }))
    .await;
    let mut pointer = stripe_source("src_connect", None);
    pointer.tenant = TenantRule::Pointer("/account".into());
    pointer.secrets.push(SourceSecret {
        secret: SigningSecret::new("whsec_old"),
        not_after_ms: Some(42),
    });
    intake.sources.inner().put(&pointer).await.unwrap();

    assert_eq!(
        intake.sources.inner().fetch("src_it").await.unwrap(),
        Some(stripe_source(
            "src_it",
            Some(RateLimit {
                requests: 5,
                window_secs: 10
            })
        ))
    );
    assert_eq!(
        intake.sources.inner().fetch("src_connect").await.unwrap(),
        Some(pointer)
    );
    assert_eq!(intake.sources.inner().list().await.unwrap().len(), 2);

    let raw = fx
        .dynamodb
        .get_item()
        .table_name(&fx.sources_table)
        .key("source_id", AttributeValue::S("src_it".into()))
        .send()
        .await
        .unwrap();
    let stored = format!("{:?}", raw.item().unwrap());
    assert!(
        !stored.contains(SECRET),
        "a secret is stored in plain text: {stored}"
    );
    assert!(stored.contains("test:"), "sealed values carry their key id");
}

#[tokio::test]
async fn an_accepted_event_is_exactly_one_sqs_message_with_its_attributes() {
    let (fx, intake) = setup(None).await;
    let body = event("evt_accept");
    let response = post(&intake, &body).await;
    assert_eq!(response.status, 202, "{}", response.body);

    let messages = fx.drain_events().await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    let attribute = |name: &str| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    assert_eq!(attribute("company_id").as_deref(), Some("co_it"));
    assert_eq!(attribute("provider").as_deref(), Some("stripe"));
    assert_eq!(
        attribute("event_type").as_deref(),
        Some("invoice.payment_failed")
    );
    assert_eq!(attribute("event_id").as_deref(), Some("evt_accept"));
    let envelope = Envelope::from_json(message.body().unwrap().as_bytes()).unwrap();
    assert_eq!(envelope.meta.version, 1);
    assert_eq!(envelope.body.as_ref(), body.as_slice());
    assert_eq!(
        envelope.meta.body_encoding,
        inlet_webhooks::envelope::BodyEncoding::Json
    );

    let record = idempotency_item(&fx, "src_it#evt_accept").await.unwrap();
    assert_eq!(record["status"].as_s().unwrap(), "COMPLETED");
    for attribute in ["expiration", "in_progress_expiration", "validation"] {
        assert!(
            record.contains_key(attribute),
            "Powertools attribute {attribute} missing"
        );
    }
}

#[tokio::test]
async fn the_same_event_five_times_in_a_row_is_one_message() {
    let (fx, intake) = setup(None).await;
    let body = event("evt_seq");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post(&intake, &body).await.status);
    }
    assert_eq!(statuses, [202, 200, 200, 200, 200]);
    assert_eq!(fx.drain_events().await.len(), 1);
}

#[tokio::test]
async fn the_same_event_five_times_at_once_is_one_message() {
    let (fx, intake) = setup(None).await;
    let intake = Arc::new(intake);
    let body = Arc::new(event("evt_concurrent"));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (intake, body) = (intake.clone(), body.clone());
            tokio::spawn(async move { post(&*intake, &body).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [202, 200, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(fx.drain_events().await.len(), 1);
}

#[tokio::test]
async fn an_enqueue_failure_is_503_with_the_claim_released_and_the_retry_succeeds() {
    let (fx, intake) = setup(None).await;
    let broken = Intake {
        queue: SqsQueue::new(
            fx.sqs.clone(),
            format!("{}-does-not-exist", fx.events_queue_url),
            1_048_576,
        ),
        ..live(&fx, false)
    };
    let body = event("evt_retry");
    let response = post(&broken, &body).await;
    assert_eq!(
        (response.status, response.code),
        (503, Some("enqueue_failed"))
    );
    assert!(
        idempotency_item(&fx, "src_it#evt_retry").await.is_none(),
        "the claim must be released"
    );
    assert!(fx.drain_events().await.is_empty());

    assert_eq!(post(&intake, &body).await.status, 202);
    assert_eq!(fx.drain_events().await.len(), 1);
}

#[tokio::test]
async fn requests_past_the_rate_limit_get_429() {
    let (fx, intake) = setup(Some(RateLimit {
        requests: 3,
        window_secs: 3600,
    }))
    .await;
    for n in 0..3 {
        assert_eq!(
            post(&intake, &event(&format!("evt_rl{n}"))).await.status,
            202
        );
    }
    let limited = post(&intake, &event("evt_rl_over")).await;
    assert_eq!((limited.status, limited.code), (429, Some("rate_limited")));
    assert!(limited.retry_after.is_some_and(|s| (1..=3600).contains(&s)));
    assert_eq!(fx.drain_events().await.len(), 3);
}

fn unreachable_dynamodb(fx: &AwsFixture) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&fx.sdk)
        .endpoint_url("http://127.0.0.1:1")
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

#[tokio::test]
async fn in_production_an_unreachable_dynamodb_is_503_and_nothing_is_enqueued() {
    let (fx, _) = setup(Some(RateLimit {
        requests: 100,
        window_secs: 60,
    }))
    .await;
    let down = unreachable_dynamodb(&fx);

    let no_sources = Intake {
        sources: CachedSources::new(
            DynamoSources::new(down.clone(), &fx.sources_table, keys()),
            Duration::from_secs(30),
            Duration::from_secs(5),
        ),
        ..live(&fx, true)
    };
    let response = post(&no_sources, &event("evt_prod1")).await;
    assert_eq!(
        (response.status, response.code),
        (503, Some("source_store_unavailable"))
    );

    let no_limiter = Intake {
        rate_limiter: DynamoRateLimiter::new(down.clone(), &fx.rate_limit_table),
        ..live(&fx, true)
    };
    let response = post(&no_limiter, &event("evt_prod2")).await;
    assert_eq!(
        (response.status, response.code),
        (503, Some("rate_limiter_unavailable"))
    );

    let no_dedupe = Intake {
        dedupe: DynamoDedupe::new(down, &fx.idempotency_table, 60_000, 604_800),
        ..live(&fx, true)
    };
    let response = post(&no_dedupe, &event("evt_prod3")).await;
    assert_eq!(
        (response.status, response.code),
        (503, Some("dedupe_store_unavailable"))
    );

    assert!(fx.drain_events().await.is_empty());
}

#[tokio::test]
async fn dedupe_claims_follow_powertools_semantics() {
    let fx = AwsFixture::create().await;
    let store = DynamoDedupe::new(fx.dynamodb.clone(), &fx.idempotency_table, 10_000, 3600);
    let t = 1_700_000_000_000;
    assert_eq!(store.claim("k", "h1", t).await.unwrap(), Claim::Claimed);
    assert_eq!(
        store.claim("k", "h1", t + 1_000).await.unwrap(),
        Claim::Existing {
            completed: false,
            payload_hash: "h1".into(),
            retry_after_secs: 10
        }
    );
    // An abandoned in-progress lease can be taken over.
    assert_eq!(
        store.claim("k", "h1", t + 10_001).await.unwrap(),
        Claim::Claimed
    );
    store.complete("k", "h1", t + 11_000).await.unwrap();
    assert!(
        matches!(store.claim("k", "h2", t + 12_000).await.unwrap(), Claim::Existing { completed: true, ref payload_hash, .. } if payload_hash == "h1")
    );
    // Release never removes a completed record.
    store.release("k").await.unwrap();
    assert!(matches!(
        store.claim("k", "h1", t + 13_000).await.unwrap(),
        Claim::Existing {
            completed: true,
            ..
        }
    ));
    // Past its logical expiration (TTL deletion lags), the key is free again.
    assert_eq!(
        store
            .claim("k", "h1", t + 11_000 + 3_601_000)
            .await
            .unwrap(),
        Claim::Claimed
    );
}

#[tokio::test]
async fn a_store_that_accepts_but_never_answers_is_given_up_on_within_about_a_second() {
    let (fx, _) = setup(None).await;
    // Accepts TCP connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let sdk = inlet_adapters::aws::sdk_config_for(inlet_adapters::aws::Patience::Intake).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(format!("http://{address}"))
        .build();
    let stuck = aws_sdk_dynamodb::Client::from_conf(config);
    let intake = Intake {
        dedupe: DynamoDedupe::new(stuck, &fx.idempotency_table, 60_000, 604_800),
        ..live(&fx, true)
    };

    let started = std::time::Instant::now();
    let response = post(&intake, &event("evt_silent")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (response.status, response.code),
        (503, Some("dedupe_store_unavailable"))
    );
    assert!(
        elapsed < Duration::from_millis(1_800),
        "took {elapsed:?}: providers such as Slack give up after 3 s"
    );
    assert!(fx.drain_events().await.is_empty());
}
