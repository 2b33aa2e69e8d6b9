//! The events queue: one SQS message per accepted event, with attributes for routing and
//! filtering (company, provider, type, event id).

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use super::describe;
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::intake::{EventQueue, QueueError};

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    /// The queue's MaximumMessageSize.
    max_message_bytes: usize,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, max_message_bytes: usize) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            max_message_bytes,
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

impl EventQueue for SqsQueue {
    async fn enqueue(&self, envelope: &Envelope<'_>) -> Result<(), QueueError> {
        // UTF-8 by construction: JSON bodies are embedded only when UTF-8; others escaped or base64.
        let body = String::from_utf8(envelope.to_json())
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        let attributes = [
            ("company_id", &*envelope.meta.company_id),
            ("provider", &*envelope.meta.provider),
            ("event_type", &*envelope.meta.event_type),
            ("event_id", &*envelope.meta.event_id),
        ];
        // SQS counts attribute names, types and values against the message size.
        let attributes_size: usize = attributes
            .iter()
            .map(|(k, v)| k.len() + v.len() + "String".len())
            .sum();
        if body.len() + attributes_size > self.max_message_bytes {
            return Err(QueueError::TooLarge);
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        for (name, value) in attributes {
            request = request.message_attributes(name, attribute(value)?);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Unavailable(format!("send_message failed: {}", describe(&e))))
    }
}
