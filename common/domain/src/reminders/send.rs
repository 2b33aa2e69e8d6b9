//! Delivering one reminder job, in stages:
//!
//! 1. `prepare` (one transaction in the tenant's context): re-check the reminder and its case (a
//!    closed case cancels the reminder, nothing is sent), find the company's channel, open the
//!    secret or the member's address, choose the variant (weights or Thompson sampling) and
//!    render it;
//! 2. `admit`: the endpoint's circuit breaker may say "not now";
//! 3. the delivery itself, through the channel port, with no transaction open;
//! 4. `record` (one transaction): the attempt in `delivery_attempts`, and the reminder's new
//!    status from the outcome table ([`super::outcome::verdict`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use inlet_core::clock::{now_ms, now_secs};
use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_postgres::{Connection, Tenant, Tx};
use inlet_webhooks::providers::{Provider, SigningSecret};

use super::ab::{self, Allocation, VariantStats};
use super::clicks::{self, ClickToken};
use super::outcome::{endpoint_health, verdict};
use super::render::{render, DEFAULT_BODY, DEFAULT_SUBJECT};
use super::ReminderJob;
use crate::money::format_minor;
use crate::ports::{Admission, CircuitBreaker, Delivery, Email, EmailChannel, WebhookChannel};

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
    policy: SendPolicy,
    keys: KeyRing,
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

/// A reminder that can never be delivered: marked failed, then dead-lettered with `reason`.
async fn give_up<T>(
    tx: Tx<'_>,
    job: &ReminderJob,
    code: DeadLetterCode,
    reason: &str,
) -> Result<T, Failure> {
    tx.execute(
        "UPDATE reminders SET status = 'failed' WHERE id = $1",
        &[&job.reminder_id],
    )
    .await?;
    tx.commit().await?;
    Err(Failure::permanent(code, reason))
}

/// What `prepare` found: everything the delivery needs, or why nothing is sent.
enum Prepared {
    Done(&'static str),
    Deliver {
        endpoint_id: i64,
        target: Target,
        variant_id: Option<i64>,
    },
}

/// Where a rendered reminder goes.
enum Target {
    Webhook {
        url: String,
        secret: String,
        payload: Vec<u8>,
    },
    Email {
        from: String,
        to: String,
        subject: String,
        body: String,
    },
}

/// The case behind a reminder, as `prepare` reads it.
struct CaseFacts {
    amount: i64,
    currency: String,
    company_name: String,
    settings: Value,
    plan: Option<String>,
    days_overdue: i64,
}

impl Sender {
    /// Opens a sealed value stored as (bytes, key id), or None.
    fn open(
        &self,
        sealed: Option<Vec<u8>>,
        key_id: Option<String>,
        context: &[u8],
    ) -> Option<String> {
        let (sealed, key_id) = sealed.zip(key_id)?;
        let bytes = self.keys.open_bytes(&key_id, &sealed, context).ok()?;
        String::from_utf8(bytes).ok()
    }

    async fn prepare(
        &self,
        connection: &mut Connection,
        company: &CompanyId,
        job: &ReminderJob,
    ) -> Result<Prepared, Failure> {
        let (tx, tenant) = connection.tenant_tx(company).await?;
        if tenant == Tenant::Unknown {
            return Err(Failure::permanent(
                DeadLetterCode::UnknownTenant,
                format!("unknown tenant {company}"),
            ));
        }
        let row = tx
            .query_opt(
                "SELECT r.status AS reminder_status, c.status AS case_status,
                        c.amount_at_risk, c.currency, co.name AS company_name, co.settings,
                        m.plan, GREATEST(0, extract(day FROM now() - c.opened_at))::int8 AS days_overdue
                   FROM reminders r
                   JOIN recovery_cases c ON c.id = r.case_id
                   JOIN companies co ON co.company_id = r.company_id
                   LEFT JOIN memberships m ON m.company_id = c.company_id AND m.provider = c.provider
                        AND m.external_id = c.membership_external_id
                  WHERE r.id = $1 AND r.case_id = $2",
                &[&job.reminder_id, &job.case_id],
            )
            .await?
            .ok_or_else(|| {
                Failure::permanent(DeadLetterCode::NotFound, "no such reminder for this tenant")
            })?;
        let reminder_status: String = row.get("reminder_status");
        let case_status: String = row.get("case_status");
        if matches!(reminder_status.as_str(), "sent" | "cancelled" | "failed") {
            tx.commit().await?;
            return Ok(Prepared::Done("already settled"));
        }
        if case_status != "open" {
            tx.execute(
                "UPDATE reminders SET status = 'cancelled' WHERE id = $1",
                &[&job.reminder_id],
            )
            .await?;
            tx.commit().await?;
            return Ok(Prepared::Done("case closed; reminder cancelled"));
        }
        let case = CaseFacts {
            amount: row.get("amount_at_risk"),
            currency: row.get("currency"),
            company_name: row.get("company_name"),
            settings: row.get("settings"),
            plan: row.get("plan"),
            days_overdue: row.get("days_overdue"),
        };
        // The company's channel: `settings.reminder_channel`, else its first active endpoint.
        let preferred = case
            .settings
            .get("reminder_channel")
            .and_then(Value::as_str)
            .unwrap_or("webhook")
            .to_owned();
        let endpoint = tx
            .query_opt(
                "SELECT id, channel, url, secret_enc, secret_key_id, email_from FROM reminder_endpoints
                  WHERE status = 'active' ORDER BY (channel = $1) DESC, id LIMIT 1",
                &[&preferred],
            )
            .await?;
        let Some(endpoint) = endpoint else {
            return give_up(
                tx,
                job,
                DeadLetterCode::DeliveryUnconfigured,
                "the company has no active reminder endpoint",
            )
            .await;
        };
        let endpoint_id: i64 = endpoint.get("id");
        let channel: String = endpoint.get("channel");
        // The member behind the case, for {{member_name}} and the email channel.
        let member = tx
            .query_opt(
                "SELECT mb.provider, mb.external_id, mb.email_enc, mb.email_key_id, mb.name_enc, mb.name_key_id
                   FROM recovery_cases c
                   JOIN memberships m ON m.company_id = c.company_id AND m.provider = c.provider
                        AND m.external_id = c.membership_external_id
                   JOIN members mb ON mb.company_id = m.company_id AND mb.provider = m.provider
                        AND mb.external_id = m.member_external_id AND mb.status = 'active'
                  WHERE c.id = $1",
                &[&job.case_id],
            )
            .await?;
        let (member_email, member_name) = member.map_or((None, None), |m| {
            let provider: String = m.get("provider");
            let external_id: String = m.get("external_id");
            (
                self.open(
                    m.get("email_enc"),
                    m.get("email_key_id"),
                    &context::member_email(company.as_str(), &provider, &external_id),
                ),
                self.open(
                    m.get("name_enc"),
                    m.get("name_key_id"),
                    &context::member_name(company.as_str(), &provider, &external_id),
                ),
            )
        });
        // Webhook: the endpoint's signing secret. Email: the member's address.
        let secret_or_address = if channel == "email" {
            member_email
        } else {
            self.open(
                endpoint.get("secret_enc"),
                endpoint.get("secret_key_id"),
                &context::endpoint_secret(company.as_str(), endpoint_id),
            )
        };
        let Some(secret_or_address) = secret_or_address else {
            let reason = if channel == "email" {
                "no email address is known for this member"
            } else {
                "the endpoint's signing secret cannot be opened"
            };
            return give_up(tx, job, DeadLetterCode::DeliveryUnconfigured, reason).await;
        };
        let variants = tx
            .query(
                "SELECT v.id, v.weight::float8 AS weight, v.subject_template, v.body_template,
                        p.sends, p.conversions
                   FROM ab_test_variants v JOIN ab_test_performance p ON p.variant_id = v.id
                  WHERE v.active AND v.channel = $1 ORDER BY v.id",
                &[&channel],
            )
            .await?;
        tx.commit().await?;

        let stats: Vec<VariantStats> = variants
            .iter()
            .map(|v| VariantStats {
                id: v.get("id"),
                weight: v.get("weight"),
                sends: u64::try_from(v.get::<_, i64>("sends")).unwrap_or(0),
                conversions: u64::try_from(v.get::<_, i64>("conversions")).unwrap_or(0),
            })
            .collect();
        let chosen = ab::choose(
            &stats,
            Allocation::from_settings(&case.settings),
            &mut rand::rng(),
        );
        let (subject, body) = chosen
            .and_then(|id| variants.iter().find(|v| v.get::<_, i64>("id") == id))
            .map_or((DEFAULT_SUBJECT.to_owned(), DEFAULT_BODY.to_owned()), |v| {
                (v.get("subject_template"), v.get("body_template"))
            });
        let fields = BTreeMap::from([
            (
                "member_name",
                member_name.unwrap_or_else(|| "there".to_owned()),
            ),
            ("amount", format_minor(case.amount, &case.currency)),
            ("currency", case.currency.to_uppercase()),
            ("plan", case.plan.unwrap_or_default()),
            (
                "recovery_link",
                self.recovery_link(job, chosen, &case.settings),
            ),
            ("company_name", case.company_name),
            ("days_overdue", case.days_overdue.to_string()),
        ]);
        let subject = render(&subject, &fields);
        let body = render(&body, &fields);
        let target = if channel == "email" {
            Target::Email {
                from: endpoint
                    .get::<_, Option<String>>("email_from")
                    .unwrap_or_default(),
                to: secret_or_address,
                subject,
                body,
            }
        } else {
            let payload = json!({
                "type": "recovery.reminder",
                "timestamp": now_secs(),
                "data": {
                    "reminder_id": job.reminder_id,
                    "case_id": job.case_id,
                    "subject": subject,
                    "body": body,
                    "amount": fields["amount"],
                    "currency": fields["currency"],
                    "recovery_link": fields["recovery_link"],
                }
            });
            Target::Webhook {
                url: endpoint.get("url"),
                secret: secret_or_address,
                payload: payload.to_string().into_bytes(),
            }
        };
        Ok(Prepared::Deliver {
            endpoint_id,
            target,
            variant_id: chosen,
        })
    }

    /// The link a reminder carries: through `track-click` when it is configured, else straight
    /// to the company's recovery URL.
    fn recovery_link(
        &self,
        job: &ReminderJob,
        variant_id: Option<i64>,
        settings: &Value,
    ) -> String {
        let recovery_url = settings
            .get("recovery_url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match &self.policy.click_base_url {
            Some(base) if !recovery_url.is_empty() => {
                let token = clicks::issue(
                    &self.keys,
                    &ClickToken {
                        reminder_id: job.reminder_id,
                        variant_id,
                        case_id: job.case_id,
                        company_id: job.company_id.clone(),
                        expires_at: now_secs()
                            + i64::try_from(self.policy.link_ttl.as_secs()).unwrap_or(0),
                    },
                );
                format!("{}/r/{token}", base.trim_end_matches('/'))
            }
            _ => recovery_url.to_owned(),
        }
    }

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
                    answer: Err(crate::ports::DeliveryError::Rejected),
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
