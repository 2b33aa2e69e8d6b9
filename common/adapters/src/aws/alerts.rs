//! Operator alerts on SNS: a warning topic and a paging topic (template.yaml's
//! `AlertsWarnTopic` and `AlertsPageTopic`).

use aws_sdk_sns::Client;

use super::describe;
use inlet_core::StoreError;
use inlet_domain::ports::{Alerts, BoxFuture, Severity};

#[derive(Debug, Clone)]
pub struct SnsAlerts {
    client: Client,
    warn_topic: String,
    page_topic: String,
}

impl SnsAlerts {
    pub fn new(
        client: Client,
        warn_topic: impl Into<String>,
        page_topic: impl Into<String>,
    ) -> Self {
        Self {
            client,
            warn_topic: warn_topic.into(),
            page_topic: page_topic.into(),
        }
    }

    async fn send(
        &self,
        severity: Severity,
        subject: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let topic = match severity {
            Severity::Warn => &self.warn_topic,
            Severity::Page => &self.page_topic,
        };
        // SNS subjects: at most 100 characters, no line breaks.
        let subject: String = subject
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        self.client
            .publish()
            .topic_arn(topic)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("publishing an alert failed: {}", describe(&e))))
    }
}

impl Alerts for SnsAlerts {
    fn publish<'a>(
        &'a self,
        severity: Severity,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.send(severity, subject, message))
    }
}
