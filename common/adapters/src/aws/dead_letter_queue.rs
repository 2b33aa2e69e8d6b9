//! Dead-letter queues on SQS: read without consuming (messages hidden, then released), send a
//! copy back, delete.

use std::collections::BTreeMap;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
};
use aws_sdk_sqs::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_domain::ports::{DeadLetterQueue, DeadMessage, Received};

#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
}

impl SqsDeadLetters {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn store_error(what: &str, error: impl std::error::Error) -> StoreError {
    StoreError(format!("{what} failed: {}", describe(&error)))
}

impl DeadLetterQueue for SqsDeadLetters {
    async fn receive(&self, queue: &str, hide_secs: i32) -> Result<Vec<Received>, StoreError> {
        let output = self
            .client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .visibility_timeout(hide_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| store_error("receive", e))?;
        Ok(output
            .messages()
            .iter()
            .map(|message| {
                let system = |name: MessageSystemAttributeName| {
                    message
                        .attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse::<i64>().ok())
                };
                Received {
                    message: DeadMessage {
                        message_id: message.message_id().unwrap_or_default().to_owned(),
                        body: message.body().unwrap_or_default().to_owned(),
                        sent_at_ms: system(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
                            .and_then(|n| u32::try_from(n).ok())
                            .unwrap_or(0),
                        attributes: message
                            .message_attributes()
                            .into_iter()
                            .flatten()
                            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                            .collect(),
                    },
                    receipt: message.receipt_handle().unwrap_or_default().to_owned(),
                }
            })
            .collect())
    }

    async fn release(&self, queue: &str, receipts: &[String]) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(n, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(n.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| StoreError(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.client
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("release", e))
    }

    async fn delete(&self, queue: &str, receipt: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(queue)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("delete", e))
    }

    async fn send(
        &self,
        queue: &str,
        body: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(queue)
            .message_body(body);
        for (name, value) in attributes.iter().take(10) {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError(e.to_string()))?;
            request = request.message_attributes(name, value);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("send", e))
    }

    async fn depth(&self, queue: &str) -> Result<Option<u64>, StoreError> {
        use aws_sdk_sqs::types::QueueAttributeName;
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| store_error("GetQueueAttributes", e))?;
        Ok(output
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse::<u64>().ok()))
    }
}

/// A queue's URL from its name.
pub async fn queue_url(client: &Client, name: &str) -> Result<String, StoreError> {
    client
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| store_error(&format!("finding queue {name}"), e))
        .map(|o| o.queue_url().unwrap_or_default().to_owned())
}
