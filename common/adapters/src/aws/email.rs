//! The email channel on Amazon SES (v2): a reminder to the member's address.

use std::time::Instant;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use inlet_domain::ports::{Answer, BoxFuture, Delivery, DeliveryError, Email, EmailChannel};

pub struct SesEmail {
    client: aws_sdk_sesv2::Client,
}

impl SesEmail {
    pub fn new(client: aws_sdk_sesv2::Client) -> Self {
        Self { client }
    }

    async fn deliver(&self, email: &Email<'_>) -> Delivery {
        let started = Instant::now();
        let text = |data: &str| Content::builder().data(data).charset("UTF-8").build();
        let message = match (text(email.subject), text(email.body)) {
            (Ok(subject), Ok(body)) => Message::builder()
                .subject(subject)
                .body(Body::builder().text(body).build())
                .build(),
            _ => {
                return Delivery {
                    answer: Err(DeliveryError::Rejected),
                    latency_ms: 0,
                }
            }
        };
        let sent = self
            .client
            .send_email()
            .from_email_address(email.from)
            .destination(Destination::builder().to_addresses(email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let answer = match sent {
            // SES took it: recorded as a 200 in the task log.
            Ok(_) => Ok(Answer {
                status: 200,
                retry_after: None,
            }),
            Err(error) => {
                // A rejected message (unverified sender, bad address, suspended account) will
                // be rejected again; throttling and network trouble pass.
                let rejected = error.as_service_error().is_some_and(|e| {
                    e.is_message_rejected()
                        || e.is_mail_from_domain_not_verified_exception()
                        || e.is_account_suspended_exception()
                        || e.is_bad_request_exception()
                });
                tracing::warn!(error = %super::describe(&error), "email not accepted by SES");
                Err(if rejected {
                    DeliveryError::Rejected
                } else {
                    DeliveryError::Connection
                })
            }
        };
        Delivery { answer, latency_ms }
    }
}

impl EmailChannel for SesEmail {
    fn send<'a>(&'a self, email: &'a Email<'a>) -> BoxFuture<'a, Delivery> {
        Box::pin(self.deliver(email))
    }
}
