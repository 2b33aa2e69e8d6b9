//! SQS event source mappings with Lambda's semantics: long-poll the queue, gather up to
//! BatchSize messages within MaximumBatchingWindowInSeconds, invoke with a real SqsEvent, and
//! delete what succeeded. With ReportBatchItemFailures only the reported ids stay; a response
//! that cannot be read, or an invocation error, leaves the whole batch to its visibility
//! timeout. At most MaximumConcurrency invocations run at once (one poller each).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use bytes::Bytes;
use inlet_adapters::aws::lambda_record;
use tokio::sync::watch;

use super::function::LocalFunction;
use super::output::Output;
use super::spec::{queue_arn, SqsSource};
use crate::template::LOCAL_REGION;

/// Which messages to delete after an invocation, by message id.
pub fn to_delete(ids: &[String], result: Result<&[u8], ()>, report_failures: bool) -> Vec<String> {
    let Ok(payload) = result else {
        return Vec::new();
    };
    if !report_failures {
        return ids.to_vec();
    }
    if payload.is_empty() || payload == b"null" {
        return ids.to_vec();
    }
    let Ok(response) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    let Some(failures) = response.get("batchItemFailures") else {
        return ids.to_vec();
    };
    let Some(failures) = failures.as_array() else {
        return Vec::new();
    };
    let mut failed = HashSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(|i| i.as_str()) {
            // An empty or unknown id makes Lambda treat the whole batch as failed.
            Some(id) if ids.iter().any(|known| known == id) => {
                failed.insert(id.to_owned());
            }
            _ => return Vec::new(),
        }
    }
    ids.iter()
        .filter(|id| !failed.contains(*id))
        .cloned()
        .collect()
}

/// Lambda's limit on an invocation's payload; SQS's on a message, with room for the
/// record's attributes.
const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
const RECORD_MAX: usize = 256 * 1024 + 4 * 1024;

/// How many messages to ask for next: what the batch still lacks, at most the 10 SQS returns
/// per call, and no more than could still fit the invocation's payload if each were as large
/// as a message can be (Lambda, too, sends fewer records when they would not fit). Zero: the
/// batch is complete.
pub fn to_request(batch_size: usize, received: usize, received_bytes: usize) -> usize {
    let room = PAYLOAD_LIMIT.saturating_sub(received_bytes) / RECORD_MAX;
    batch_size.saturating_sub(received).min(10).min(room)
}

async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    source: &SqsSource,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
    let mut messages: Vec<aws_sdk_sqs::types::Message> = Vec::new();
    let started = Instant::now();
    loop {
        let received_bytes: usize = messages
            .iter()
            .map(|m| m.body.as_deref().map_or(0, str::len) + RECORD_MAX - 256 * 1024)
            .sum();
        let wanted = to_request(source.batch_size as usize, messages.len(), received_bytes);
        if wanted == 0 {
            return Ok(messages);
        }
        let left = source.window.saturating_sub(started.elapsed());
        // Long-poll while nothing has arrived. Within a batching window, SQS's whole seconds
        // cannot express what is left, so short polls a tenth of a second apart fill the batch
        // (back to back they would keep the emulator busy for everyone else).
        let wait = if messages.is_empty() {
            5
        } else if left >= Duration::from_secs(1) {
            left.as_secs().min(5) as i32
        } else {
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            0
        };
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(wanted as i32)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| anyhow::anyhow!(inlet_adapters::aws::describe_error(&e)))?;
        messages.extend(received.messages.unwrap_or_default());
        let full = to_request(source.batch_size as usize, messages.len(), 0) == 0;
        let window_over = started.elapsed() >= source.window;
        if full || (!messages.is_empty() && window_over) || *stop.borrow() {
            return Ok(messages);
        }
    }
}

/// One poller: receive, invoke, delete, until `stop`.
pub async fn poll(
    function: Arc<LocalFunction>,
    source: SqsSource,
    url: String,
    sqs: aws_sdk_sqs::Client,
    output: Arc<Output>,
    mut stop: watch::Receiver<bool>,
) {
    let arn = queue_arn(&source.queue);
    while !*stop.borrow() {
        let watcher = stop.clone();
        let messages = tokio::select! {
            received = receive(&sqs, &url, &source, &watcher) => received,
            _ = stop.changed() => return,
        };
        let messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                output.say(&format!(
                    "{}: receiving from {} failed: {error}; retrying",
                    function.spec.id, source.queue
                ));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| lambda_record(m, &arn, LOCAL_REGION))
            .collect();
        let payload = match serde_json::to_vec(&event) {
            Ok(payload) => payload,
            Err(error) => {
                output.say(&format!(
                    "{}: cannot encode a batch: {error}",
                    function.spec.id
                ));
                continue;
            }
        };
        // In-flight invocations finish even when a stop arrives meanwhile.
        let invocation = function.invoke(Bytes::from(payload)).await;
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|m| m.message_id().map(str::to_owned))
            .collect();
        let delete = to_delete(
            &ids,
            invocation.result.as_deref().map_err(|_| ()),
            source.report_failures,
        );
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.message_id()
                    .is_some_and(|id| delete.iter().any(|d| d == id))
            })
            .filter_map(|(n, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{n}"))
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        // DeleteMessageBatch takes ten entries at a time.
        for chunk in entries.chunks(10) {
            if let Err(error) = sqs
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
            {
                // Not lost: the messages come back after their visibility timeout.
                output.say(&format!(
                    "{}: deleting processed messages failed: {}",
                    function.spec.id,
                    inlet_adapters::aws::describe_error(&error)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn a_batch_is_asked_for_ten_at_a_time_up_to_its_size_and_the_invocation_payload_limit() {
        assert_eq!(to_request(50, 0, 0), 10);
        assert_eq!(to_request(50, 45, 45 * 6_000), 5);
        assert_eq!(to_request(50, 50, 50 * 6_000), 0);
        assert_eq!(to_request(5, 0, 0), 5);
        // Twenty messages of 256 KiB: what could still come might not fit 6 MB.
        let large = 20 * RECORD_MAX;
        assert_eq!(to_request(50, 20, large), 3);
        assert_eq!(to_request(50, 23, 23 * RECORD_MAX), 0);
    }

    #[test]
    fn reported_failures_stay_and_the_rest_is_deleted() {
        let payload = br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#;
        assert_eq!(to_delete(&ids(), Ok(payload), true), ["a", "c"]);
        assert_eq!(
            to_delete(&ids(), Ok(br#"{"batchItemFailures":[]}"#), true),
            ids()
        );
        assert_eq!(to_delete(&ids(), Ok(b"null"), true), ids());
    }

    #[test]
    fn an_error_or_an_unreadable_response_leaves_the_whole_batch() {
        assert!(to_delete(&ids(), Err(()), true).is_empty());
        assert!(to_delete(&ids(), Err(()), false).is_empty());
        assert!(to_delete(&ids(), Ok(b"garbage"), true).is_empty());
        let unknown = br#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#;
        assert!(to_delete(&ids(), Ok(unknown), true).is_empty());
        let empty = br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#;
        assert!(to_delete(&ids(), Ok(empty), true).is_empty());
    }

    #[test]
    fn without_report_batch_item_failures_success_deletes_everything() {
        let payload = br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#;
        assert_eq!(to_delete(&ids(), Ok(payload), false), ids());
    }
}
