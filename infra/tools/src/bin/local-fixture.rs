//! A Lambda function for the local stack's own tests (infra/tests/fixtures/local-template.yaml):
//! it misbehaves on request, so the tests can show how the stack reports timeouts, crashes and
//! panics, redelivers SQS batches, and fires schedules. Not part of the deployed system.
//!
//! - `FIXTURE_INIT=crash`: exits during init, after reporting `/init/error`-style failure.
//! - HTTP `GET /fixture/{mode}`: `ok` answers 200, `panic` panics, `sleep` outlives Timeout,
//!   `after` answers 200 and then works 500 ms before taking the next event (the webhook
//!   functions' post-response work).
//! - SQS: a record whose body is `slow` makes the invocation outlive its Timeout.
//! - a scheduled event: logs `scheduled event from aws.events` and returns.

use std::time::Duration;

use inlet_lambda::after_response::AfterResponse;
use lambda_runtime::{service_fn, Error, LambdaEvent, Runtime};
use serde_json::{json, Value};

async fn handle(event: LambdaEvent<Value>, after: AfterResponse) -> Result<Value, Error> {
    let payload = event.payload;
    if payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        println!(
            "scheduled event from {}",
            payload["source"].as_str().unwrap_or_default()
        );
        return Ok(json!({}));
    }
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        for record in records {
            println!(
                "record {} receive {}",
                record["messageId"].as_str().unwrap_or_default(),
                record["attributes"]["ApproximateReceiveCount"]
                    .as_str()
                    .unwrap_or_default()
            );
            if record["body"] == "slow" {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        }
        return Ok(json!({"batchItemFailures": []}));
    }
    match payload
        .pointer("/pathParameters/mode")
        .and_then(Value::as_str)
    {
        Some("panic") => panic!("the fixture was asked to panic"),
        Some("sleep") => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(json!({}))
        }
        Some("after") => {
            after.defer(async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                println!("post-response work done");
            });
            Ok(json!({"statusCode": 200, "body": "answered first"}))
        }
        _ => Ok(json!({"statusCode": 200, "body": "ok"})),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var("FIXTURE_INIT").as_deref() == Ok("crash") {
        eprintln!("fixture: crashing during init as configured");
        std::process::exit(3);
    }
    let after = AfterResponse::default();
    let handler = {
        let after = after.clone();
        service_fn(move |event| handle(event, after.clone()))
    };
    Runtime::new(handler).layer(after.layer()).run().await
}
