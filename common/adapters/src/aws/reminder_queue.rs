//! The reminders queue on SQS: jobs from `schedule-reminders`, ten per SendMessageBatch.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use inlet_core::StoreError;
use inlet_domain::ports::ReminderQueue;
use inlet_domain::reminders::ReminderJob;

/// The reminders queue.
pub struct SqsReminderQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsReminderQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl ReminderQueue for SqsReminderQueue {
    async fn send_batch(&self, jobs: &[ReminderJob]) -> Result<Vec<String>, StoreError> {
        let text = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| StoreError(e.to_string()))
        };
        let mut entries = Vec::with_capacity(jobs.len());
        for (index, job) in jobs.iter().enumerate() {
            let body = serde_json::to_string(job).map_err(|e| StoreError(e.to_string()))?;
            entries.push(
                SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .message_attributes("company_id", text(&job.company_id)?)
                    .message_attributes("job_key", text(&job.key)?)
                    .build()
                    .map_err(|e| StoreError(e.to_string()))?,
            );
        }
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError(super::describe(&e)))?;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .filter_map(|i| jobs.get(i).map(|j| j.key.clone()))
            .collect())
    }
}
