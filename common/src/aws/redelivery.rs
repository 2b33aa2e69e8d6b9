//! The batch runner's ports on SQS: dead-lettering a record (its body and attributes, plus the
//! error class and reason) and delaying a record on its own queue.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use super::describe;
use crate::consumer::{DeadLetterCode, DeadLetters, Visibility};
use crate::intake::StoreError;

/// SQS allows ten attributes per message; four are ours.
const CARRIED_ATTRIBUTES: usize = 6;

#[derive(Debug)]
pub struct SqsRedelivery {
    client: Client,
    dlq_url: String,
    /// Queue ARN -> URL, resolved once per container.
    queue_urls: Mutex<HashMap<String, String>>,
}

impl SqsRedelivery {
    pub fn new(client: Client, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            dlq_url: dlq_url.into(),
            queue_urls: Mutex::default(),
        }
    }

    async fn queue_url(&self, arn: &str) -> Result<String, StoreError> {
        if let Some(url) = self
            .queue_urls
            .lock()
            .ok()
            .and_then(|m| m.get(arn).cloned())
        {
            return Ok(url);
        }
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let mut parts = arn.rsplitn(3, ':');
        let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
            return Err(StoreError(format!("{arn} is not a queue ARN")));
        };
        let output = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| StoreError(format!("resolving queue {name} failed: {}", describe(&e))))?;
        let url = output.queue_url().unwrap_or_default().to_owned();
        if let Ok(mut urls) = self.queue_urls.lock() {
            urls.insert(arn.to_owned(), url.clone());
        }
        Ok(url)
    }
}

fn text(value: &str) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| StoreError(e.to_string()))
}

impl DeadLetters for SqsRedelivery {
    async fn send(
        &self,
        message: &SqsMessage,
        code: DeadLetterCode,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(message.body.clone().unwrap_or_default())
            .message_attributes("inlet_error_class", text(code.class().as_str())?)
            .message_attributes("inlet_error_code", text(code.as_str())?)
            .message_attributes("inlet_error_reason", text(reason)?)
            .message_attributes(
                "inlet_source_queue",
                text(message.event_source_arn.as_deref().unwrap_or("unknown"))?,
            );
        let mut carried: Vec<_> = message
            .message_attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("inlet_error"))
            .filter_map(|(name, value)| Some((name, value.string_value.as_deref()?)))
            .collect();
        carried.sort();
        for (name, value) in carried.into_iter().take(CARRIED_ATTRIBUTES) {
            request = request.message_attributes(name, text(value)?);
        }
        request.send().await.map(|_| ()).map_err(|e| {
            StoreError(format!(
                "sending to the dead-letter queue failed: {}",
                describe(&e)
            ))
        })
    }
}

impl Visibility for SqsRedelivery {
    async fn delay(&self, message: &SqsMessage, seconds: u32) -> Result<(), StoreError> {
        let arn = message
            .event_source_arn
            .as_deref()
            .ok_or_else(|| StoreError("record has no eventSourceARN".into()))?;
        let receipt = message
            .receipt_handle
            .as_deref()
            .ok_or_else(|| StoreError("record has no receipt handle".into()))?;
        let url = self.queue_url(arn).await?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("changing visibility failed: {}", describe(&e))))
    }
}

/// A received SQS message as Lambda's SQS event source delivers it (the local cloud and tests
/// build real `SqsEvent` records with it).
pub fn lambda_record(
    message: &aws_sdk_sqs::types::Message,
    queue_arn: &str,
    region: &str,
) -> SqsMessage {
    use aws_lambda_events::event::sqs::SqsMessageAttribute;
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    record.attributes = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    record.message_attributes = message
        .message_attributes()
        .map(|attributes| {
            attributes
                .iter()
                .map(|(name, value)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = value.string_value().map(str::to_owned);
                    attribute.data_type = Some(value.data_type().to_owned());
                    (name.clone(), attribute)
                })
                .collect()
        })
        .unwrap_or_default();
    record.event_source_arn = Some(queue_arn.to_owned());
    record.event_source = Some("aws:sqs".to_owned());
    record.aws_region = Some(region.to_owned());
    record
}
