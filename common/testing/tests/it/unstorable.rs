//! Every event intake accepts is stored, even when its JSON carries what Postgres text and
//! jsonb cannot hold (U+0000, a lone surrogate): signed as each provider with a projection signs,
//! accepted through the real intake, queued, processed into Postgres, nothing dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use http::{HeaderMap, HeaderName, HeaderValue};
use inlet_adapters::aws::{
    lambda_record, DynamoDedupe, DynamoRateLimiter, DynamoSources, SqsQueue, SqsRedelivery,
};
use inlet_core::clock::now_ms;
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_lambda::batch::{Backoff, BatchRunner};
use inlet_lambda::metrics::Discard;
use inlet_lambda::process_events::Processor;
use inlet_postgres::{Database, DbSettings};
use inlet_testing::{AwsFixture, TestDb, TEST_KEYS};
use inlet_webhooks::intake::{
    CachedSources, Intake, IntakeConfig, IntakeRequest, Source, SourceSecret, TenantRule,
    DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::Provider;

const COMPANY: &str = "co_unstorable";

fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

/// Per provider with a projection: (event id, body) with U+0000 in an id, in text fields and
/// in keys, and a lone surrogate in a field intake does not read.
fn events(provider: Provider) -> Vec<(String, String)> {
    let bodies = match provider {
        Provider::Stripe => vec![
            r#"{"id":"evt_nul_ids","object":"event","type":"invoice.payment_failed","created":1764600000,"data":{"object":{"id":"in_\u0000a","object":"invoice","amount_due":4900,"currency":"usd","customer":"cus_\u0000a","subscription":"sub_\u0000a"}}}"#,
            r#"{"id":"evt_nul_text","object":"event","type":"customer.created","created":1764600001,"data":{"object":{"id":"cus_text","object":"customer","name":"Ada\u0000 Lovelace","email":"ada\u0000@example.com","description":"note \u0000","status":"ok\u0000"}}}"#,
            r#"{"id":"evt_nul_keys","object":"event","type":"customer.updated","created":1764600002,"data":{"object":{"id":"cus_keys","object":"customer","metadata":{"tier\u0000":"gold"},"\u0000":1}},"extra\u0000key":true}"#,
            r#"{"id":"evt_surrogate","object":"event","type":"customer.created","created":1764600003,"data":{"object":{"id":"cus_surrogate","object":"customer","name":"half \ud800 a pair"}}}"#,
        ],
        Provider::Whop => vec![
            r#"{"type":"payment.failed","data":{"id":"pay_\u0000a","membership":{"id":"mem_\u0000a"},"user":{"id":"user_\u0000a"},"total":19.99,"currency":"usd"}}"#,
            r#"{"type":"membership.activated","data":{"id":"mem_text","status":"active","user":{"id":"user_text","email":"li\u0000nus@example.com","name":"Li\u0000nus"},"plan":{"id":"plan_1"}}}"#,
            r#"{"type":"payment.failed","data":{"id":"pay_keys","membership":{"id":"mem_keys"},"total":5,"currency":"usd","failure_message":"card\u0000declined","meta\u0000data":{"\u0000":null}}}"#,
        ],
        Provider::Clerk => vec![
            r#"{"type":"user.created","object":"event","timestamp":1764600000000,"data":{"id":"user_\u0000a","object":"user","email_addresses":[]}}"#,
            r#"{"type":"user.created","object":"event","timestamp":1764600001000,"data":{"id":"user_text","object":"user","first_name":"Mar\u0000garet","primary_email_address_id":"idn_1","email_addresses":[{"id":"idn_1","email_address":"m\u0000@example.com"}]}}"#,
            r#"{"type":"user.updated","object":"event","timestamp":1764600002000,"data":{"id":"user_keys","object":"user","unsafe\u0000metadata":{"a\u0000":"b\u0000"},"email_addresses":[]}}"#,
        ],
        _ => vec![],
    };
    bodies
        .into_iter()
        .enumerate()
        .map(|(n, body)| (format!("msg_{provider}_{n}"), body.to_owned()))
        .collect()
}

fn source(provider: Provider) -> Source {
    Source {
        source_id: format!("src_{provider}"),
        provider,
        tenant: TenantRule::Fixed(CompanyId::parse(COMPANY).unwrap()),
        secrets: vec![SourceSecret {
            secret: provider.demo_secret(),
            not_after_ms: None,
        }],
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        rate_limit: None,
        body_limit: DEFAULT_BODY_LIMIT,
        enabled: true,
    }
}

#[tokio::test]
async fn signed_events_with_nul_or_lone_surrogates_are_accepted_stored_and_projected() {
    let fx = AwsFixture::create().await;
    let db = TestDb::create().await;
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Unstorable')",
            &[&COMPANY],
        )
        .await
        .unwrap();
    let mut sent = 0;
    for provider in [Provider::Stripe, Provider::Whop, Provider::Clerk] {
        let intake = Intake {
            config: IntakeConfig {
                provider,
                production: true,
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
        };
        intake.sources.inner().put(&source(provider)).await.unwrap();
        for (event_id, body) in events(provider) {
            let now = now_ms();
            let mut headers = HeaderMap::new();
            for (name, value) in provider.sign(
                &provider.demo_secret(),
                body.as_bytes(),
                now / 1000,
                &event_id,
            ) {
                headers.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            let answer = intake
                .handle(&IntakeRequest {
                    source_id: &format!("src_{provider}"),
                    headers: &headers,
                    body: body.as_bytes(),
                    received_at_ms: now,
                    trace_id: None,
                })
                .await;
            assert_eq!(answer.status, 202, "{provider} {event_id}: {}", answer.body);
            sent += 1;
        }
    }

    let arn = format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        fx.events_queue_url.rsplit('/').next().unwrap()
    );
    let mut event = SqsEvent::default();
    event.records = fx
        .drain_events()
        .await
        .iter()
        .map(|m| lambda_record(m, &arn, "us-east-1"))
        .collect();
    assert_eq!(event.records.len(), sent);
    let processor = Processor {
        runner: BatchRunner {
            ports: SqsRedelivery::new(fx.sqs.clone(), &fx.events_dlq_url),
            backoff: Backoff::default(),
        },
        database: Database::new(DbSettings::new(&db.app_url)),
        projections: inlet_domain::projections::all(),
        keys: keys(),
        metrics: Arc::new(Discard),
    };
    let response = processor.handle_batch(&event).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );

    let admin = db.admin().await;
    let one = async |sql: &str| -> i64 { admin.query_one(sql, &[]).await.unwrap().get(0) };
    assert_eq!(
        one("SELECT count(*) FROM webhook_events WHERE status = 'completed'").await,
        sent as i64,
        "every event is in the ledger, processed"
    );
    // Ids: the derived id carries U+FFFD where the payload had U+0000.
    assert_eq!(
        one("SELECT count(*) FROM payments WHERE external_id IN ('in_\u{FFFD}a', 'pay_\u{FFFD}a')")
            .await,
        2
    );
    assert_eq!(
        one("SELECT count(*) FROM recovery_cases WHERE membership_external_id IN ('sub_\u{FFFD}a', 'mem_\u{FFFD}a', 'mem_keys')").await,
        3
    );
    assert_eq!(
        one("SELECT count(*) FROM members WHERE external_id IN ('user_\u{FFFD}a', 'cus_text', 'cus_keys', 'cus_surrogate', 'user_text', 'user_keys')").await,
        7,
        "user_text twice: Whop's and Clerk's"
    );
    // Text: the failure reason and payload_min hold the replacement character, no NUL.
    assert_eq!(
        one("SELECT count(*) FROM payments WHERE failure_reason = 'card\u{FFFD}declined'").await,
        1
    );
    assert_eq!(
        one("SELECT count(*) FROM webhook_events WHERE payload_min::text LIKE '%\u{FFFD}%'").await,
        4,
        "payload_min keeps the ids and the status, each with U+FFFD"
    );
    // The sealed payload is the exact bytes, \u0000 and all.
    let sealed = admin
        .query_one(
            "SELECT payload_enc, payload_key_id, source_id FROM webhook_events WHERE provider_event_id = 'evt_nul_text'",
            &[],
        )
        .await
        .unwrap();
    let (bytes, key_id, source_id): (Vec<u8>, String, String) =
        (sealed.get(0), sealed.get(1), sealed.get(2));
    let opened = keys()
        .open_bytes(
            &key_id,
            &bytes,
            &inlet_core::crypto::context::payload(COMPANY, &source_id, "evt_nul_text"),
        )
        .unwrap();
    assert_eq!(opened, events(Provider::Stripe)[1].1.as_bytes());
    // Nothing dead-lettered.
    let dead = fx
        .sqs
        .receive_message()
        .queue_url(&fx.events_dlq_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(dead.messages().is_empty(), "{:?}", dead.messages());
}
