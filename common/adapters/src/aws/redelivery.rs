//! The batch runner's ports on SQS: dead-lettering a record (its body and attributes, plus the
//! error class and reason) and delaying a record on its own queue.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_domain::ports::{DeadLetter, DeadLetters, Receipt, Visibility};

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
    async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), StoreError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(letter.body)
            .message_attributes("inlet_error_class", text(letter.code.class().as_str())?)
            .message_attributes("inlet_error_code", text(letter.code.as_str())?)
            .message_attributes("inlet_error_reason", text(letter.reason)?)
            .message_attributes(
                "inlet_source_queue",
                text(letter.source_queue.unwrap_or("unknown"))?,
            );
        let mut carried: Vec<_> = letter
            .attributes
            .iter()
            .filter(|(name, _)| !name.starts_with("inlet_error") && *name != "inlet_source_queue")
            .collect();
        carried.sort();
        for (name, value) in carried.into_iter().take(CARRIED_ATTRIBUTES) {
            request = request.message_attributes(*name, text(value)?);
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
    async fn delay(&self, receipt: &Receipt<'_>, seconds: u32) -> Result<(), StoreError> {
        let arn = receipt
            .queue
            .ok_or_else(|| StoreError("record has no eventSourceARN".into()))?;
        let handle = receipt
            .handle
            .ok_or_else(|| StoreError("record has no receipt handle".into()))?;
        let url = self.queue_url(arn).await?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("changing visibility failed: {}", describe(&e))))
    }
}
