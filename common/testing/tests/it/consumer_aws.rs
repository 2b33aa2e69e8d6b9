//! The batch runner on real SQS (moto): dead letters carry their class, transient records come
//! back after their backoff, as Lambda's SQS event source would redeliver them.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use inlet_adapters::aws::{lambda_record, SqsRedelivery};
use inlet_core::{DeadLetterCode, Failure};
use inlet_lambda::batch::{Backoff, BatchRunner};
use inlet_testing::AwsFixture;

async fn queue_arn(fx: &AwsFixture) -> String {
    fx.sqs
        .get_queue_attributes()
        .queue_url(&fx.events_queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap()
}

async fn receive(fx: &AwsFixture, url: &str, wait_secs: i32) -> Vec<aws_sdk_sqs::types::Message> {
    fx.sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .visibility_timeout(30)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages()
        .to_vec()
}

#[tokio::test]
async fn a_poison_record_reaches_the_dlq_with_its_class_and_a_transient_one_comes_back_after_its_backoff(
) {
    let fx = AwsFixture::create().await;
    for body in ["ok", "poison", "flaky"] {
        let company = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("co_1")
            .build()
            .unwrap();
        fx.sqs
            .send_message()
            .queue_url(&fx.events_queue_url)
            .message_body(body)
            .message_attributes("company_id", company)
            .send()
            .await
            .unwrap();
    }
    let arn = queue_arn(&fx).await;
    let mut event = SqsEvent::default();
    event.records = receive(&fx, &fx.events_queue_url, 1)
        .await
        .iter()
        .map(|m| lambda_record(m, &arn, "us-east-1"))
        .collect();
    assert_eq!(event.records.len(), 3);

    let runner = BatchRunner {
        ports: SqsRedelivery::new(fx.sqs.clone(), &fx.events_dlq_url),
        backoff: Backoff {
            base_secs: 1,
            max_secs: 1,
        },
    };
    let (response, stats) = runner
        .run(&event, async |record| match record.body.as_deref() {
            Some("poison") => Err(Failure::permanent(
                DeadLetterCode::UnknownVersion,
                "envelope version 9 is not supported",
            )),
            Some("flaky") => Err(Failure::Transient(
                "canceling statement due to lock timeout".into(),
            )),
            _ => Ok(()),
        })
        .await;
    let flaky = event
        .records
        .iter()
        .find(|r| r.body.as_deref() == Some("flaky"))
        .unwrap();
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [flaky.message_id.clone().unwrap()]);
    assert_eq!(
        (stats.succeeded(), stats.permanent(), stats.transient()),
        (1, 1, 1)
    );

    // As Lambda does with ReportBatchItemFailures: delete everything not reported failed.
    for record in event
        .records
        .iter()
        .filter(|r| !failed.contains(r.message_id.as_ref().unwrap()))
    {
        fx.sqs
            .delete_message()
            .queue_url(&fx.events_queue_url)
            .receipt_handle(record.receipt_handle.clone().unwrap())
            .send()
            .await
            .unwrap();
    }

    let dead = receive(&fx, &fx.events_dlq_url, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("poison"));
    let attribute = |name: &str| {
        dead[0]
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    assert_eq!(attribute("inlet_error_class").as_deref(), Some("permanent"));
    assert_eq!(
        attribute("inlet_error_reason").as_deref(),
        Some("envelope version 9 is not supported")
    );
    assert_eq!(
        attribute("company_id").as_deref(),
        Some("co_1"),
        "the record's own attributes travel along"
    );
    assert_eq!(
        attribute("inlet_source_queue").as_deref(),
        Some(arn.as_str())
    );

    // The transient record was received with a 30 s visibility timeout; the backoff shortened it
    // to 1 s, so it is back well before 30 s, on its second receive.
    let started = Instant::now();
    let mut again = Vec::new();
    while again.is_empty() && started.elapsed() < Duration::from_secs(10) {
        again = receive(&fx, &fx.events_queue_url, 2).await;
    }
    assert_eq!(again.len(), 1, "only the transient record comes back");
    assert_eq!(again[0].body(), Some("flaky"));
    let count = again[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned();
    assert_eq!(count.as_deref(), Some("2"));
    assert!(started.elapsed() < Duration::from_secs(10));
}
