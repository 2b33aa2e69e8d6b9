//! The webhook function binaries, run as Lambdas: each is a real process speaking the Lambda
//! Runtime API to `inlet_infra::runtime`, fed its sample from events/, with SQS and DynamoDB in
//! the emulator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use inlet_adapters::aws::DynamoSources;
use inlet_core::crypto::KeyRing;
use inlet_infra::events;
use inlet_infra::runtime::{FunctionProcess, Outcome, RuntimeApi};
use inlet_testing::{required_env, AwsFixture, TEST_KEYS};
use inlet_webhooks::intake::demo;
use inlet_webhooks::providers::Provider;
use serde_json::Value;

/// Builds the webhook binaries (a no-op when they are fresh) and returns the directory. The
/// command is the one `make test` runs first: another package selection would unify dependency
/// features differently and rebuild everything.
pub(crate) fn built_functions() -> PathBuf {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--workspace", "--bins"])
            .status()
            .expect("run cargo build");
    assert!(status.success(), "building the webhook functions failed");
    Path::new(env!("CARGO_BIN_EXE_inlet"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A fresh database holding the demo company the events/ samples and the demo sources name.
pub(crate) async fn demo_company_db() -> inlet_testing::TestDb {
    let db = inlet_testing::TestDb::create().await;
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Demo')",
            &[&demo::DEMO_COMPANY],
        )
        .await
        .unwrap();
    db
}

fn sample(provider: Provider) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/webhook-{provider}.json"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    events::resign(&mut event, provider, now).unwrap();
    event
}

fn environment(fx: &AwsFixture) -> Vec<(String, String)> {
    [
        ("SOURCES_TABLE", fx.sources_table.clone()),
        ("IDEMPOTENCY_TABLE", fx.idempotency_table.clone()),
        ("RATE_LIMIT_TABLE", fx.rate_limit_table.clone()),
        ("EVENTS_QUEUE_URL", fx.events_queue_url.clone()),
        ("INLET_KEYS", TEST_KEYS.to_owned()),
        ("INLET_ENV", "production".to_owned()),
        ("AWS_ENDPOINT_URL", required_env("AWS_ENDPOINT_URL")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn invoke(api: &RuntimeApi, event: &Value) -> Value {
    let (_, outcome) = api
        .invoke(
            Bytes::from(serde_json::to_vec(event).unwrap()),
            Duration::from_secs(15),
        )
        .await
        .expect("the function answers");
    match outcome {
        Outcome::Response(body) => serde_json::from_slice(&body).unwrap(),
        other => panic!("invocation failed: {other:?}"),
    }
}

#[tokio::test]
async fn every_webhook_function_binary_accepts_its_sample_event_as_a_lambda() {
    let bin = built_functions();
    let fx = AwsFixture::create().await;
    let store = DynamoSources::new(
        fx.dynamodb.clone(),
        &fx.sources_table,
        KeyRing::parse(TEST_KEYS, None).unwrap(),
    );
    for source in demo::demo_sources() {
        store.put(&source).await.unwrap();
    }

    for provider in Provider::ALL {
        let name = format!("webhook-{provider}");
        let api = RuntimeApi::start(&name).await.unwrap();
        let _process =
            FunctionProcess::spawn(&bin.join(&name), &api, &name, 128, &environment(&fx)).unwrap();
        let event = sample(provider);

        let first = invoke(&api, &event).await;
        assert_eq!(first["statusCode"], 202, "{name}: {first}");
        assert_eq!(
            first["headers"]["content-type"], "application/json",
            "{name}"
        );
        let again = invoke(&api, &event).await;
        assert_eq!(
            again["statusCode"], 200,
            "{name}: a retry is a duplicate: {again}"
        );

        let mut unsigned = event.clone();
        unsigned["body"] = Value::String(format!("{} ", event["body"].as_str().unwrap()));
        let refused = invoke(&api, &unsigned).await;
        assert_eq!(refused["statusCode"], 401, "{name}: {refused}");
        assert_eq!(
            refused["headers"]["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(
        fx.drain_events().await.len(),
        Provider::ALL.len(),
        "one message per function"
    );
}

#[tokio::test]
async fn a_webhook_function_without_its_configuration_stops_at_cold_start_naming_the_variable() {
    let bin = built_functions();
    let api = RuntimeApi::start("webhook-stripe").await.unwrap();
    let mut command = tokio::process::Command::new(bin.join("webhook-stripe"));
    command
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "webhook-stripe")
        .env("INLET_KEYS", TEST_KEYS)
        .env_remove("SOURCES_TABLE")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    let output = tokio::time::timeout(Duration::from_secs(15), command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(!output.status.success());
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        logs.contains("environment variable SOURCES_TABLE is required"),
        "{logs}"
    );
    assert!(
        !logs.contains("AAECAwQF"),
        "the key ring leaked into the logs: {logs}"
    );
}

#[tokio::test]
async fn the_process_events_binary_records_its_sample_batch_once_and_dead_letters_poison() {
    let bin = built_functions();
    let db = demo_company_db().await;
    let fx = AwsFixture::create().await;
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.app_url.clone()),
        ("EVENTS_DLQ_URL", fx.events_dlq_url.clone()),
        ("INLET_KEYS", TEST_KEYS.to_owned()),
        ("AWS_ENDPOINT_URL", required_env("AWS_ENDPOINT_URL")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let api = RuntimeApi::start("process-events").await.unwrap();
    let _process = FunctionProcess::spawn(
        &bin.join("process-events"),
        &api,
        "process-events",
        256,
        &env,
    )
    .unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/process-events.json");
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    for _ in 0..2 {
        let response = invoke(&api, &sample).await;
        assert_eq!(
            response["batchItemFailures"],
            serde_json::json!([]),
            "{response}"
        );
    }
    let rows: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE provider_event_id = 'evt_1PdemoFailed0001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "a redelivered batch is recorded once");

    let mut poison = sample.clone();
    poison["Records"][0]["body"] = Value::String(r#"{"version":9,"anything":true}"#.into());
    let response = invoke(&api, &poison).await;
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "a poison record is acknowledged, not retried"
    );
    let dead = fx
        .sqs
        .receive_message()
        .queue_url(&fx.events_dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let dead = dead.messages();
    assert_eq!(dead.len(), 1);
    let class = dead[0]
        .message_attributes()
        .and_then(|a| a.get("inlet_error_class"))
        .and_then(|v| v.string_value());
    assert_eq!(class, Some("permanent"));
}
