//! Reminder delivery against real Postgres and a local HTTP receiver that checks Standard
//! Webhooks signatures the way a company's endpoint would.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use inlet_adapters::http::{HttpDelivery, HttpSettings};
use inlet_core::crypto::context;
use inlet_core::crypto::KeyRing;
use inlet_core::{DeadLetterCode, Failure};
use inlet_domain::reminders::clicks;
use inlet_domain::reminders::send::{SendPolicy, Sender};
use inlet_domain::reminders::ReminderJob;
use inlet_postgres::Connection;
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::providers::{Provider, SigningSecret, VerifyOptions};
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const COMPANY: &str = "co_remind";

/// A company's endpoint: answers with the scripted statuses (then 200), records every verified
/// delivery, and refuses (401) anything whose signature does not verify.
#[derive(Default)]
pub(crate) struct Receiver {
    pub(crate) script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    pub(crate) delivered: Mutex<Vec<(u16, Value)>>,
    unsigned: Mutex<u32>,
}

pub(crate) async fn serve(receiver: Arc<Receiver>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let receiver = receiver.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let receiver = receiver.clone();
                    async move {
                        let headers = request.headers().clone();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs() as i64;
                        let secret = SigningSecret::new(SECRET);
                        let verified = Provider::Standard.verify(
                            &headers,
                            &body,
                            &[&secret],
                            VerifyOptions {
                                now,
                                tolerance_secs: 300,
                            },
                        );
                        let mut response = Response::new(Full::new(Bytes::new()));
                        if verified.is_err() {
                            *receiver.unsigned.lock().unwrap() += 1;
                            *response.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                            return Ok::<_, Infallible>(response);
                        }
                        let (status, retry_after) = receiver
                            .script
                            .lock()
                            .unwrap()
                            .pop_front()
                            .unwrap_or((200, None));
                        receiver
                            .delivered
                            .lock()
                            .unwrap()
                            .push((status, serde_json::from_slice(&body).unwrap()));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        if let Some(seconds) = retry_after {
                            response
                                .headers_mut()
                                .insert("retry-after", seconds.parse().unwrap());
                        }
                        Ok(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}/hooks/recovery")
}

pub(crate) fn keys() -> KeyRing {
    KeyRing::parse(TEST_KEYS, None).unwrap()
}

/// A webhook endpoint for `company` at `url`, its secret sealed as the CLI seals it.
pub(crate) async fn add_endpoint(db: &TestDb, company: &str, url: &str) {
    let admin = db.admin().await;
    let row = admin
        .query_one(
            "INSERT INTO reminder_endpoints (company_id, channel, url) VALUES ($1, 'webhook', $2) RETURNING id",
            &[&company, &url],
        )
        .await
        .unwrap();
    let endpoint_id: i64 = row.get(0);
    let (key_id, sealed) = keys().seal_bytes(
        SECRET.as_bytes(),
        &context::endpoint_secret(company, endpoint_id),
    );
    admin
        .execute(
            "UPDATE reminder_endpoints SET secret_enc = $1, secret_key_id = $2 WHERE id = $3",
            &[&sealed, &key_id, &endpoint_id],
        )
        .await
        .unwrap();
}

/// A company with an open case, its reminder enqueued, a webhook endpoint at `url` and one
/// variant. Returns the job the scheduler would have sent.
async fn setup(url: &str) -> (TestDb, ReminderJob) {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO companies (company_id, name, settings) VALUES ('{COMPANY}', 'Remind Co',
                 '{{\"recovery_url\": \"https://remind.example/billing\"}}');
             INSERT INTO recovery_cases (company_id, provider, membership_external_id, opened_by_payment,
                 amount_at_risk, currency, opened_at)
             VALUES ('{COMPANY}', 'stripe', 'sub_1', 'in_1', 4900, 'usd', now() - interval '2 days');
             INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status, enqueue_attempts)
             VALUES ('{COMPANY}', 1, 0, now(), 'enqueued', 1);
             INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
             VALUES ('{COMPANY}', 'webhook', 'friendly', 'Hi {{{{member_name}}}}, {{{{company_name}}}} here',
                     'Pay {{{{amount}}}} {{{{currency}}}} at {{{{recovery_link}}}} ({{{{days_overdue}}}} days)');"
        ))
        .await
        .unwrap();
    add_endpoint(&db, COMPANY, url).await;
    let job = ReminderJob {
        key: ReminderJob::key_for(1, 1),
        reminder_id: 1,
        company_id: COMPANY.into(),
        case_id: 1,
        due_at: "2026-01-01T00:00:00Z".into(),
        attempt: 1,
    };
    (db, job)
}

pub(crate) fn sender_with(production: bool, click_base_url: Option<&str>) -> Sender {
    Sender::new(
        SendPolicy {
            max_attempts: 5,
            click_base_url: click_base_url.map(str::to_owned),
            link_ttl: Duration::from_secs(86_400),
        },
        keys(),
        HttpDelivery::new(HttpSettings {
            production,
            timeout: Duration::from_secs(10),
        })
        .unwrap(),
    )
}

fn sender(production: bool) -> Sender {
    sender_with(production, None)
}

async fn one(db: &TestDb, sql: &str) -> String {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_due_reminder_is_rendered_signed_delivered_and_recorded_with_its_variant() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    let mut connection = Connection::from(db.app().await);
    assert_eq!(
        sender(false).deliver(&mut connection, &job, 1).await,
        Ok("sent")
    );

    let delivered = receiver.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    let data = &delivered[0].1["data"];
    assert_eq!(data["subject"], "Hi there, Remind Co here");
    assert_eq!(
        data["body"],
        "Pay 49.00 USD at https://remind.example/billing (2 days)"
    );
    assert_eq!(*receiver.unsigned.lock().unwrap(), 0);
    assert_eq!(one(&db, "SELECT status FROM reminders").await, "sent");
    assert_eq!(
        one(
            &db,
            "SELECT v.name FROM ab_test_usage u JOIN ab_test_variants v ON v.id = u.variant_id"
        )
        .await,
        "friendly"
    );
    assert_eq!(
        one(&db, "SELECT attempt || ':' || status_code || ':' || coalesce(error_class, '-') FROM delivery_attempts").await,
        "1:200:-"
    );
    // A redelivered job for a sent reminder sends nothing more.
    assert_eq!(
        sender(false).deliver(&mut connection, &job, 2).await,
        Ok("already settled")
    );
    assert_eq!(receiver.delivered.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_500_then_200_is_retried_and_delivered_once_and_retry_after_is_honoured() {
    let receiver = Arc::new(Receiver::default());
    receiver
        .script
        .lock()
        .unwrap()
        .extend([(500, None), (429, Some("30"))]);
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    let mut connection = Connection::from(db.app().await);
    let sender = sender(false);
    assert!(matches!(
        sender.deliver(&mut connection, &job, 1).await,
        Err(Failure::Transient(_))
    ));
    assert_eq!(
        sender.deliver(&mut connection, &job, 2).await,
        Err(Failure::RetryAfter {
            reason: "the endpoint answered 429".into(),
            seconds: 30
        })
    );
    assert_eq!(sender.deliver(&mut connection, &job, 3).await, Ok("sent"));
    let successes = receiver
        .delivered
        .lock()
        .unwrap()
        .iter()
        .filter(|(status, _)| *status == 200)
        .count();
    assert_eq!(successes, 1, "delivered once");
    let log: Vec<(i32, i32, Option<String>)> = db
        .admin()
        .await
        .query(
            "SELECT attempt, status_code, error_class FROM delivery_attempts ORDER BY attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        log,
        [
            (1, 500, Some("transient".into())),
            (2, 429, Some("transient".into())),
            (3, 200, None)
        ]
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_fails_the_reminder() {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().unwrap().push_back((410, None));
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    let mut connection = Connection::from(db.app().await);
    assert!(matches!(
        sender(false).deliver(&mut connection, &job, 1).await,
        Err(Failure::Permanent(_))
    ));
    assert_eq!(
        one(
            &db,
            "SELECT status || ':' || disabled_reason FROM reminder_endpoints"
        )
        .await,
        "disabled:410 Gone"
    );
    assert_eq!(one(&db, "SELECT status FROM reminders").await, "failed");
}

#[tokio::test]
async fn a_reminder_whose_case_closed_after_it_was_enqueued_is_not_sent() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    db.admin()
        .await
        .execute(
            "UPDATE recovery_cases SET status = 'recovered', closed_at = now()",
            &[],
        )
        .await
        .unwrap();
    let mut connection = Connection::from(db.app().await);
    assert_eq!(
        sender(false).deliver(&mut connection, &job, 1).await,
        Ok("case closed; reminder cancelled")
    );
    assert!(receiver.delivered.lock().unwrap().is_empty());
    assert_eq!(one(&db, "SELECT status FROM reminders").await, "cancelled");
}

#[tokio::test]
async fn in_production_an_endpoint_on_a_private_address_is_refused_without_a_request() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    let mut connection = Connection::from(db.app().await);
    let refused = sender(true).deliver(&mut connection, &job, 1).await;
    assert_eq!(
        refused,
        Err(Failure::permanent(
            DeadLetterCode::DeliveryRejected,
            "private address refused"
        ))
    );
    assert!(receiver.delivered.lock().unwrap().is_empty());
    assert_eq!(one(&db, "SELECT status FROM reminders").await, "failed");
}

async fn click(database: &inlet_postgres::Database, token: &str) -> (u16, Option<String>) {
    use lambda_http::RequestExt;
    let request = lambda_http::Request::default().with_path_parameters(
        std::collections::HashMap::from([("token".to_owned(), token.to_owned())]),
    );
    let response = inlet_lambda::track_click::handle(database, &keys(), request).await;
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), location)
}

#[tokio::test]
async fn a_reminder_link_counts_one_click_and_redirects_to_the_recovery_url() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;
    let mut connection = Connection::from(db.app().await);
    let sender = sender_with(false, Some("https://track.example"));
    assert_eq!(sender.deliver(&mut connection, &job, 1).await, Ok("sent"));
    let link = receiver.delivered.lock().unwrap()[0].1["data"]["recovery_link"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = link
        .strip_prefix("https://track.example/r/")
        .unwrap()
        .to_owned();

    let database = inlet_postgres::Database::new(inlet_postgres::DbSettings::new(&db.app_url));
    for _ in 0..2 {
        assert_eq!(
            click(&database, &token).await,
            (302, Some("https://remind.example/billing".to_owned()))
        );
    }
    let clicks: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM ab_test_conversions WHERE kind = 'click' AND reminder_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(clicks, 1, "one click per link");

    let expired = clicks::issue(
        &keys(),
        &clicks::ClickToken {
            reminder_id: 1,
            variant_id: Some(1),
            case_id: 1,
            company_id: COMPANY.into(),
            expires_at: inlet_core::clock::now_secs() - 1,
        },
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    for bad in [expired.as_str(), forged.as_str(), "test.AAAA", "nope"] {
        let (status, location) = click(&database, bad).await;
        assert_eq!((status, location), (404, None), "{bad}");
    }
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_opens_its_circuit_which_half_opens_and_closes_on_success() {
    use inlet_adapters::aws::{BreakerPolicy, DynamoBreaker};
    let receiver = Arc::new(Receiver::default());
    receiver
        .script
        .lock()
        .unwrap()
        .extend([(503, None), (503, None)]);
    let url = serve(receiver.clone()).await;
    let (db, job) = setup(&url).await;

    // The breaker's table, shaped as template.yaml's CircuitBreakerTable.
    let fx = inlet_testing::AwsFixture::create().await;
    let table = format!("breaker_{}", fx.sources_table);
    {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        fx.dynamodb
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("key")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("key")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let policy = BreakerPolicy {
        threshold: 2,
        // Long enough that the two fail-fast checks below stay inside it on a loaded machine.
        cool_down: Duration::from_secs(3),
        probe_lease: Duration::from_secs(5),
    };
    let first = sender(false).with_breaker(DynamoBreaker::new(fx.dynamodb.clone(), &table, policy));
    let mut connection = Connection::from(db.app().await);
    for attempt in 1..=2 {
        assert!(
            matches!(
                first.deliver(&mut connection, &job, attempt).await,
                Err(Failure::Transient(_))
            ),
            "attempt {attempt}"
        );
    }
    // Open: fails fast, nothing reaches the endpoint.
    let fast = first.deliver(&mut connection, &job, 3).await;
    assert!(
        matches!(&fast, Err(Failure::RetryAfter { reason, seconds }) if reason.contains("circuit is open") && (1..=3).contains(seconds)),
        "{fast:?}"
    );
    assert_eq!(receiver.delivered.lock().unwrap().len(), 2);
    // A second container sees the same open circuit.
    let other = sender(false).with_breaker(DynamoBreaker::new(fx.dynamodb.clone(), &table, policy));
    assert!(matches!(
        other.deliver(&mut connection, &job, 3).await,
        Err(Failure::RetryAfter { .. })
    ));

    // After the cool-down one probe goes out; it succeeds and the circuit closes.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(first.deliver(&mut connection, &job, 4).await, Ok("sent"));
    assert_eq!(receiver.delivered.lock().unwrap().len(), 3);
    let state = fx
        .dynamodb
        .get_item()
        .table_name(&table)
        .key(
            "key",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{COMPANY}#1")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(state["state"].as_s().unwrap(), "closed");
    assert_eq!(
        one(&db, "SELECT string_agg(coalesce(error_class, 'ok'), ',' ORDER BY attempt) FROM delivery_attempts").await,
        "transient,transient,circuit_open,ok"
    );
}

/// Messages moto's SES has accepted (its inspection API), from `source`.
async fn sent_emails(source: &str) -> Vec<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let body = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let data: Value = serde_json::from_slice(&body).unwrap();
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["source"] == source)
        .collect()
}

#[tokio::test]
async fn the_email_channel_sends_through_ses_to_the_members_sealed_address() {
    use crate::stripe_recovery::{invoice, run, setup as company, stripe, subscription, COMPANY};
    let db = company(
        serde_json::json!({"recovery_url": "https://pay.example/fix", "reminder_channel": "email"}),
    )
    .await;
    run(
        &db,
        &[
            stripe(
                "evt_cus",
                "customer.created",
                "2024-03-01T09:00:00Z",
                serde_json::json!({"id": "cus_1", "object": "customer", "email": "ada@example.com", "name": "Ada Lovelace"}),
            ),
            stripe("evt_sub", "customer.subscription.created", "2024-03-01T10:00:00Z", subscription("active")),
            stripe("evt_fail", "invoice.payment_failed", "2024-03-01T11:00:00Z", invoice("in_1", "open")),
        ],
    )
    .await;
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let from = format!("billing{unique}@remind.example");
    let admin = db.admin().await;
    admin
        .execute(
            "INSERT INTO reminder_endpoints (company_id, channel, email_from) VALUES ($1, 'email', $2)",
            &[&COMPANY, &from],
        )
        .await
        .unwrap();
    admin
        .execute(
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
             VALUES ($1, 'email', 'plain', 'About your {{plan}} plan', 'Hi {{member_name}}, pay {{amount}} {{currency}}: {{recovery_link}}')",
            &[&COMPANY],
        )
        .await
        .unwrap();
    let config = inlet_adapters::aws::sdk_config().await;
    let ses = aws_sdk_sesv2::Client::new(&config);
    ses.create_email_identity()
        .email_identity(&from)
        .send()
        .await
        .unwrap();
    let reminders: Vec<(i64, i64)> = admin
        .query(
            "SELECT id, case_id FROM reminders ORDER BY offset_hours",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let job = |(reminder_id, case_id): (i64, i64)| ReminderJob {
        key: ReminderJob::key_for(reminder_id, 1),
        reminder_id,
        company_id: COMPANY.into(),
        case_id,
        due_at: "2024-03-01T11:00:00Z".into(),
        attempt: 1,
    };
    let sender = sender(false).with_email(inlet_adapters::aws::SesEmail::new(ses.clone()));
    let mut connection = Connection::from(db.app().await);
    assert_eq!(
        sender.deliver(&mut connection, &job(reminders[0]), 1).await,
        Ok("sent")
    );
    let sent = sent_emails(&from).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0]["destinations"]["ToAddresses"],
        serde_json::json!(["ada@example.com"])
    );
    assert_eq!(sent[0]["subject"], "About your price_pro plan");
    assert_eq!(
        sent[0]["body"],
        "Hi Ada Lovelace, pay 49.00 USD: https://pay.example/fix"
    );

    // SES refuses an unverified sender: the reminder fails for good.
    admin
        .execute(
            "UPDATE reminder_endpoints SET email_from = 'nobody@unverified.example'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        sender.deliver(&mut connection, &job(reminders[1]), 1).await,
        Err(Failure::permanent(
            DeadLetterCode::DeliveryRejected,
            "the email was rejected"
        ))
    );
}
