//! Delivering one reminder job, in stages:
//!
//! 1. `prepare` ([`super::prepare`], one transaction in the tenant's context): re-check the
//!    reminder and its case (a closed case cancels the reminder, nothing is sent), find the
//!    company's channel, open the secret or the member's address, choose the variant (weights
//!    or Thompson sampling) and render it;
//! 2. `admit`: the endpoint's circuit breaker may say "not now";
//! 3. the delivery itself, through the channel port, with no transaction open;
//! 4. `record` (one transaction): the attempt in `delivery_attempts`, and the reminder's new
//!    status from the outcome table ([`super::outcome::verdict`]).

use std::sync::Arc;
use std::time::Duration;

use inlet_core::clock::{now_ms, now_secs};
use inlet_core::crypto::KeyRing;
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_postgres::Connection;
use inlet_webhooks::providers::{Provider, SigningSecret};

use super::outcome::{endpoint_health, verdict};
use super::prepare::{Prepared, Target};
use super::ReminderJob;
use crate::ports::{
    Admission, CircuitBreaker, Delivery, DeliveryError, Email, EmailChannel, WebhookChannel,
};

/// How reminders are sent, from the function's configuration.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Deliveries tried before the reminder is given up (the queue's maxReceiveCount).
    pub max_attempts: u32,
    /// Where `track-click` answers (`{base}/r/{token}`); without it links go straight to the
    /// company's recovery URL and clicks are not counted.
    pub click_base_url: Option<String>,
    /// How long a reminder's link works.
    pub link_ttl: Duration,
}

/// Delivers reminder jobs through its channels.
pub struct Sender {
    pub(super) policy: SendPolicy,
    pub(super) keys: KeyRing,
    webhook: Arc<dyn WebhookChannel>,
    /// For companies whose channel is email (none: email reminders are refused).
    email: Option<Arc<dyn EmailChannel>>,
    /// Shared per-endpoint circuit (none: every delivery is attempted).
    breaker: Option<Arc<dyn CircuitBreaker>>,
}

impl Sender {
    pub fn new(policy: SendPolicy, keys: KeyRing, webhook: impl WebhookChannel + 'static) -> Self {
        Sender {
            policy,
            keys,
            webhook: Arc::new(webhook),
            email: None,
            breaker: None,
        }
    }

    /// Delivers the email channel through `email`.
    pub fn with_email(mut self, email: impl EmailChannel + 'static) -> Self {
        self.email = Some(Arc::new(email));
        self
    }

    /// Shares each endpoint's circuit through `breaker`.
    pub fn with_breaker(mut self, breaker: impl CircuitBreaker + 'static) -> Self {
        self.breaker = Some(Arc::new(breaker));
        self
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }
}

impl Sender {
    async fn send(&self, target: Target, job: &ReminderJob) -> Delivery {
        match target {
            Target::Webhook {
                url,
                secret,
                payload,
            } => {
                let headers = Provider::Standard.sign(
                    &SigningSecret::new(secret),
                    &payload,
                    now_secs(),
                    &job.key,
                );
                self.webhook.post(&url, headers, payload).await
            }
            Target::Email {
                from,
                to,
                subject,
                body,
            } => match &self.email {
                Some(email) => {
                    email
                        .send(&Email {
                            from: &from,
                            to: &to,
                            subject: &subject,
                            body: &body,
                        })
                        .await
                }
                None => Delivery {
                    answer: Err(DeliveryError::Rejected),
                    latency_ms: 0,
                },
            },
        }
    }

    /// Delivers one job; `attempt` is the record's receive count.
    pub async fn deliver(
        &self,
        connection: &mut Connection,
        job: &ReminderJob,
        attempt: u32,
    ) -> Result<&'static str, Failure> {
        let company = CompanyId::parse(&job.company_id)
            .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "invalid company id"))?;
        let (endpoint_id, target, variant_id) =
            match self.prepare(connection, &company, job).await? {
                Prepared::Done(what) => return Ok(what),
                Prepared::Deliver {
                    endpoint_id,
                    target,
                    variant_id,
                } => (endpoint_id, target, variant_id),
            };
        let circuit = format!("{}#{endpoint_id}", company.as_str());
        let admission = match &self.breaker {
            Some(breaker) => breaker
                .admit(&circuit, now_ms())
                .await
                .unwrap_or_else(|error| {
                    // The breaker protects endpoints, not correctness: deliver without it.
                    tracing::warn!(%error, "circuit breaker unavailable; delivering anyway");
                    Admission::Allowed
                }),
            None => Admission::Allowed,
        };
        let attempt_number = i32::try_from(attempt).unwrap_or(i32::MAX);
        if let Admission::Open { retry_after_secs } = admission {
            let (tx, _) = connection.tenant_tx(&company).await?;
            tx.execute(
                "INSERT INTO delivery_attempts (company_id, reminder_id, endpoint_id, attempt, error_class, next_retry_at)
                 VALUES (get_current_company_id(), $1, $2, $3, 'circuit_open', now() + make_interval(secs => $4::float8))
                 ON CONFLICT (reminder_id, attempt) DO NOTHING",
                &[&job.reminder_id, &endpoint_id, &attempt_number, &f64::from(retry_after_secs)],
            )
            .await?;
            tx.commit().await?;
            return Err(Failure::RetryAfter {
                reason: "the endpoint's circuit is open".into(),
                seconds: retry_after_secs,
            });
        }
        let delivery = self.send(target, job).await;
        if let Some(breaker) = &self.breaker {
            // After the delivery, which may have taken its whole timeout: the cool-down starts
            // when the failure is known.
            let now = now_ms();
            let recorded = match endpoint_health(&delivery) {
                Some(false) => {
                    breaker
                        .failed(&circuit, admission == Admission::Probe, now)
                        .await
                }
                Some(true) => breaker.succeeded(&circuit, now).await,
                None => Ok(()),
            };
            if let Err(error) = recorded {
                tracing::warn!(%error, "could not record the delivery in the circuit breaker");
            }
        }
        let verdict = verdict(&delivery, attempt, self.policy.max_attempts);
        self.record(
            connection,
            &company,
            job,
            endpoint_id,
            attempt_number,
            &delivery,
            &verdict,
            variant_id,
        )
        .await?;
        verdict.result
    }

    /// The attempt in the task log and the reminder's new status, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        connection: &mut Connection,
        company: &CompanyId,
        job: &ReminderJob,
        endpoint_id: i64,
        attempt: i32,
        delivery: &Delivery,
        verdict: &super::outcome::Verdict,
        variant_id: Option<i64>,
    ) -> Result<(), Failure> {
        let (tx, _) = connection.tenant_tx(company).await?;
        let status_code = delivery.answer.ok().map(|a| i32::from(a.status));
        let retry_secs = match &verdict.result {
            Err(Failure::RetryAfter { seconds, .. }) => Some(f64::from(*seconds)),
            Err(Failure::Transient(_)) => Some(0.0),
            _ => None,
        };
        let error_class = verdict.class.map(|c| c.as_str());
        tx.execute(
            "INSERT INTO delivery_attempts (company_id, reminder_id, endpoint_id, attempt, status_code,
                 latency_ms, error_class, next_retry_at)
             VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6,
                     now() + make_interval(secs => $7::float8))
             ON CONFLICT (reminder_id, attempt) DO NOTHING",
            &[&job.reminder_id, &endpoint_id, &attempt, &status_code, &delivery.latency_ms, &error_class, &retry_secs],
        )
        .await?;
        match &verdict.result {
            Ok(_) => {
                tx.execute(
                    "UPDATE reminders SET status = 'sent' WHERE id = $1 AND status IN ('pending', 'enqueued')",
                    &[&job.reminder_id],
                )
                .await?;
                if let Some(variant_id) = variant_id {
                    tx.execute(
                        "INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id)
                         VALUES (get_current_company_id(), $1, $2, $3) ON CONFLICT (reminder_id) DO NOTHING",
                        &[&variant_id, &job.reminder_id, &job.case_id],
                    )
                    .await?;
                }
            }
            Err(Failure::Permanent(permanent)) => {
                if permanent.code == DeadLetterCode::EndpointGone {
                    tx.execute(
                        "UPDATE reminder_endpoints SET status = 'disabled', disabled_reason = '410 Gone' WHERE id = $1",
                        &[&endpoint_id],
                    )
                    .await?;
                }
                tx.execute(
                    "UPDATE reminders SET status = 'failed' WHERE id = $1 AND status IN ('pending', 'enqueued')",
                    &[&job.reminder_id],
                )
                .await?;
            }
            Err(_) => {}
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One record of the reminders queue: decode the job, deliver it, log what happened.
pub async fn handle_record(
    database: &inlet_postgres::Database,
    sender: &Sender,
    body: &[u8],
    attempt: u32,
) -> Result<(), Failure> {
    let job: ReminderJob = serde_json::from_slice(body)
        .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "not a reminder job"))?;
    let mut connection = database
        .client()
        .await
        .map_err(|e| Failure::TransientBatch(e.to_string()))?;
    let outcome = sender.deliver(&mut connection, &job, attempt).await?;
    tracing::info!(reminder_id = job.reminder_id, company_id = %job.company_id, attempt, outcome, "reminder handled");
    Ok(())
}
