//! The `send-reminders` consumer: one reminder job per record, on the shared batch runner.
//!
//! Per job: in the tenant's context, re-check the reminder and its case (a closed case cancels
//! the reminder, nothing is sent), pick the variant (weights or Thompson sampling), render it,
//! and deliver it to the company's webhook endpoint signed with Standard Webhooks headers.
//! Every attempt is written to `delivery_attempts`. No transaction is held open during the HTTP
//! call. Outcomes: 2xx → `sent` (and the variant's usage recorded); 410 → the endpoint is
//! disabled and the reminder fails (dead letter); 408/429/5xx/network → retried later,
//! honouring Retry-After; any other 4xx → the reminder fails.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ab::{self, Allocation, VariantStats};
use super::clicks::now_secs;
use super::schedule_reminders::ReminderJob;
use crate::aws::Admission;
use crate::consumer::{DeadLetterCode, Failure};
use crate::crypto::KeyRing;
use crate::db::{failure_for, CompanyId, Connection, Tenant, Tx};
use crate::providers::{Provider, SigningSecret};

/// What a reminder says when the company has no active variant.
pub const DEFAULT_SUBJECT: &str = "Your payment did not go through";
pub const DEFAULT_BODY: &str =
    "Hi {{member_name}}, your payment of {{amount}} {{currency}} failed. Update it here: {{recovery_link}}";

/// The sealing context of an endpoint's secret: a sealed value cannot be moved to another row.
pub fn endpoint_secret_context(company_id: &str, endpoint_id: i64) -> String {
    format!("reminder_endpoint/{company_id}/{endpoint_id}")
}

/// Fills `{{name}}` placeholders (the names variants are checked against when saved).
pub fn render(template: &str, fields: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(fields.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Minor units as a decimal amount (two decimals; zero-decimal currencies are not special-cased
/// yet).
fn decimal(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, (minor % 100).abs())
}

/// Whether an address is one a production sender must never reach (SSRF).
pub fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64/10 (CGNAT)
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// DNS for outbound webhooks: in production, names resolving only to private, loopback or
/// link-local addresses are refused at connection time (the check and the connection use the
/// same answer, so a rebinding name cannot slip through).
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err("the endpoint resolves to no public address".into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct SenderSettings {
    pub production: bool,
    pub timeout: Duration,
    /// Deliveries tried before the reminder is given up (the queue's maxReceiveCount).
    pub max_attempts: u32,
    /// Where `track-click` answers (`{base}/r/{token}`); without it links go straight to the
    /// company's recovery URL and clicks are not counted.
    pub click_base_url: Option<String>,
    /// How long a reminder's link works.
    pub link_ttl: Duration,
}

pub struct Sender {
    client: reqwest::Client,
    settings: SenderSettings,
    pub keys: KeyRing,
    /// Shared per-endpoint circuit (None: every delivery is attempted).
    breaker: Option<crate::aws::DynamoBreaker>,
    /// Amazon SES, for companies whose channel is email.
    email: Option<aws_sdk_sesv2::Client>,
}

/// Literal private addresses in the URL itself (no DNS involved) are refused up front.
fn refuses_literal(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(address) => is_private(address),
        Err(_) => bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost"),
    }
}

impl Sender {
    pub fn new(settings: SenderSettings, keys: KeyRing) -> Result<Sender, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Inlet-Reminders/1");
        if settings.production {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Sender {
            client: builder.build()?,
            settings,
            keys,
            breaker: None,
            email: None,
        })
    }

    /// Delivers the email channel through SES.
    pub fn with_email(mut self, client: aws_sdk_sesv2::Client) -> Self {
        self.email = Some(client);
        self
    }

    /// Shares each endpoint's circuit through `breaker`.
    pub fn with_breaker(mut self, breaker: crate::aws::DynamoBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }
}

struct Delivery {
    status: Option<u16>,
    retry_after: Option<u32>,
    latency_ms: i32,
    error: Option<String>,
}

/// The breaker's clock: milliseconds, so a cool-down is as long as configured rather than up to
/// a second shorter (a whole-second clock opened a 1 s circuit until the next second began).
fn now_ms() -> i64 {
    i64::try_from(crate::metrics::now_ms()).unwrap_or(i64::MAX)
}

fn db(error: tokio_postgres::Error) -> Failure {
    failure_for(&error)
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
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Err(Failure::permanent(code, reason))
}

/// What the first transaction found: everything the delivery needs, or why nothing is sent.
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

impl Sender {
    async fn post(&self, url: &str, job: &ReminderJob, secret: &str, payload: Vec<u8>) -> Delivery {
        let headers =
            Provider::Standard.sign(&SigningSecret::new(secret), &payload, now_secs(), &job.key);
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let answer = request.body(payload).send().await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        match answer {
            Ok(response) => Delivery {
                status: Some(response.status().as_u16()),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok()),
                latency_ms,
                error: None,
            },
            Err(error) => Delivery {
                status: None,
                retry_after: None,
                latency_ms,
                // The URL is the company's configuration, not a secret; the body is never logged.
                error: Some(if error.is_timeout() {
                    "timeout".to_owned()
                } else {
                    "connection failed".to_owned()
                }),
            },
        }
    }

    async fn prepare(
        &self,
        connection: &mut Connection,
        company: &CompanyId,
        job: &ReminderJob,
    ) -> Result<Prepared, Failure> {
        let (tx, tenant) = connection.tenant_tx(company).await.map_err(db)?;
        if tenant == Tenant::Unknown {
            return Err(Failure::permanent(
                DeadLetterCode::UnknownTenant,
                format!("unknown tenant {company}"),
            ));
        }
        let row = tx
            .query_opt(
                "SELECT r.status, c.status, c.amount_at_risk, c.currency, co.name, co.settings,
                        m.plan, GREATEST(0, extract(day FROM now() - c.opened_at))::int8
                   FROM reminders r
                   JOIN recovery_cases c ON c.id = r.case_id
                   JOIN companies co ON co.company_id = r.company_id
                   LEFT JOIN memberships m ON m.company_id = c.company_id AND m.provider = c.provider
                        AND m.external_id = c.membership_external_id
                  WHERE r.id = $1 AND r.case_id = $2",
                &[&job.reminder_id, &job.case_id],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| {
                Failure::permanent(DeadLetterCode::NotFound, "no such reminder for this tenant")
            })?;
        let (reminder_status, case_status): (String, String) = (row.get(0), row.get(1));
        if matches!(reminder_status.as_str(), "sent" | "cancelled" | "failed") {
            tx.commit().await.map_err(db)?;
            return Ok(Prepared::Done("already settled"));
        }
        if case_status != "open" {
            tx.execute(
                "UPDATE reminders SET status = 'cancelled' WHERE id = $1",
                &[&job.reminder_id],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Ok(Prepared::Done("case closed; reminder cancelled"));
        }
        let settings: Value = row.get(5);
        // The company's channel: `settings.reminder_channel`, else its first active endpoint.
        let preferred = settings
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
            .await
            .map_err(db)?;
        let Some(endpoint) = endpoint else {
            return give_up(
                tx,
                job,
                DeadLetterCode::DeliveryUnconfigured,
                "the company has no active reminder endpoint",
            )
            .await;
        };
        let endpoint_id: i64 = endpoint.get(0);
        let channel: String = endpoint.get(1);
        let open = |sealed: Option<Vec<u8>>, key_id: Option<String>, context: String| {
            let (sealed, key_id) = sealed.zip(key_id)?;
            let bytes = self
                .keys
                .open_bytes(&key_id, &sealed, context.as_bytes())
                .ok()?;
            String::from_utf8(bytes).ok()
        };
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
            .await
            .map_err(db)?;
        let (member_email, member_name) = member.map_or((None, None), |m| {
            let (provider, external_id): (String, String) = (m.get(0), m.get(1));
            (
                open(
                    m.get(2),
                    m.get(3),
                    super::members::member_email_context(company.as_str(), &provider, &external_id),
                ),
                open(
                    m.get(4),
                    m.get(5),
                    super::members::member_name_context(company.as_str(), &provider, &external_id),
                ),
            )
        });
        // Webhook: the endpoint's signing secret. Email: the member's address.
        let secret_or_address = if channel == "email" {
            member_email
        } else {
            open(
                endpoint.get(3),
                endpoint.get(4),
                endpoint_secret_context(company.as_str(), endpoint_id),
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
                "SELECT v.id, v.weight::float8, v.subject_template, v.body_template, p.sends, p.conversions
                   FROM ab_test_variants v JOIN ab_test_performance p ON p.variant_id = v.id
                  WHERE v.active AND v.channel = $1 ORDER BY v.id",
                &[&channel],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;

        let stats: Vec<VariantStats> = variants
            .iter()
            .map(|v| VariantStats {
                id: v.get(0),
                weight: v.get(1),
                sends: u64::try_from(v.get::<_, i64>(4)).unwrap_or(0),
                conversions: u64::try_from(v.get::<_, i64>(5)).unwrap_or(0),
            })
            .collect();
        let chosen = ab::choose(
            &stats,
            Allocation::from_settings(&settings),
            &mut rand::rng(),
        );
        let (subject, body) = chosen
            .and_then(|id| variants.iter().find(|v| v.get::<_, i64>(0) == id))
            .map_or((DEFAULT_SUBJECT.to_owned(), DEFAULT_BODY.to_owned()), |v| {
                (v.get(2), v.get(3))
            });
        let recovery_url = settings
            .get("recovery_url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let recovery_link = match &self.settings.click_base_url {
            Some(base) if !recovery_url.is_empty() => {
                let token = super::clicks::issue(
                    &self.keys,
                    &super::clicks::ClickToken {
                        reminder_id: job.reminder_id,
                        variant_id: chosen,
                        case_id: job.case_id,
                        company_id: job.company_id.clone(),
                        expires_at: now_secs()
                            + i64::try_from(self.settings.link_ttl.as_secs()).unwrap_or(0),
                    },
                );
                format!("{}/r/{token}", base.trim_end_matches('/'))
            }
            _ => recovery_url.to_owned(),
        };
        let fields = BTreeMap::from([
            (
                "member_name",
                member_name.unwrap_or_else(|| "there".to_owned()),
            ),
            ("amount", decimal(row.get(2))),
            ("currency", row.get::<_, String>(3).to_uppercase()),
            ("plan", row.get::<_, Option<String>>(6).unwrap_or_default()),
            ("recovery_link", recovery_link),
            ("company_name", row.get(4)),
            ("days_overdue", row.get::<_, i64>(7).to_string()),
        ]);
        let subject = render(&subject, &fields);
        let body = render(&body, &fields);
        let target = if channel == "email" {
            Target::Email {
                from: endpoint.get::<_, Option<String>>(5).unwrap_or_default(),
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
                url: endpoint.get(2),
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

    async fn send_email(&self, from: &str, to: &str, subject: &str, body: &str) -> Delivery {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let started = Instant::now();
        let Some(client) = &self.email else {
            return Delivery {
                status: None,
                retry_after: None,
                latency_ms: 0,
                error: Some("rejected".to_owned()),
            };
        };
        let text = |data: &str| Content::builder().data(data).charset("UTF-8").build();
        let message = match (text(subject), text(body)) {
            (Ok(subject), Ok(body)) => Message::builder()
                .subject(subject)
                .body(Body::builder().text(body).build())
                .build(),
            _ => {
                return Delivery {
                    status: None,
                    retry_after: None,
                    latency_ms: 0,
                    error: Some("rejected".to_owned()),
                }
            }
        };
        let sent = client
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().to_addresses(to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        match sent {
            Ok(_) => Delivery {
                status: Some(200),
                retry_after: None,
                latency_ms,
                error: None,
            },
            Err(error) => {
                // A rejected message (unverified sender, bad address, suspended account) will
                // be rejected again; throttling and network trouble pass.
                let rejected = error.as_service_error().is_some_and(|e| {
                    e.is_message_rejected()
                        || e.is_mail_from_domain_not_verified_exception()
                        || e.is_account_suspended_exception()
                        || e.is_bad_request_exception()
                });
                tracing::warn!(error = %crate::aws::describe_error(&error), "email not accepted by SES");
                Delivery {
                    status: None,
                    retry_after: None,
                    latency_ms,
                    error: Some(
                        if rejected {
                            "rejected"
                        } else {
                            "connection failed"
                        }
                        .to_owned(),
                    ),
                }
            }
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
        if let Admission::Open { retry_after_secs } = admission {
            let (tx, _) = connection.tenant_tx(&company).await.map_err(db)?;
            tx.execute(
                "INSERT INTO delivery_attempts (company_id, reminder_id, endpoint_id, attempt, error_class, next_retry_at)
                 VALUES (get_current_company_id(), $1, $2, $3, 'circuit_open', now() + make_interval(secs => $4::float8))
                 ON CONFLICT (reminder_id, attempt) DO NOTHING",
                &[&job.reminder_id, &endpoint_id, &i32::try_from(attempt).unwrap_or(i32::MAX), &f64::from(retry_after_secs)],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            return Err(Failure::RetryAfter {
                reason: "the endpoint's circuit is open".into(),
                seconds: retry_after_secs,
            });
        }
        let delivery = match target {
            Target::Webhook {
                url,
                secret,
                payload,
            } => {
                let parsed = reqwest::Url::parse(&url).map_err(|_| {
                    Failure::permanent(
                        DeadLetterCode::DeliveryUnconfigured,
                        "the endpoint URL is not a URL",
                    )
                })?;
                if self.settings.production && refuses_literal(&parsed) {
                    Delivery {
                        status: None,
                        retry_after: None,
                        latency_ms: 0,
                        error: Some("private address refused".to_owned()),
                    }
                } else {
                    self.post(&url, job, &secret, payload).await
                }
            }
            Target::Email {
                from,
                to,
                subject,
                body,
            } => self.send_email(&from, &to, &subject, &body).await,
        };
        if let Some(breaker) = &self.breaker {
            let unhealthy = matches!(delivery.status, Some(408 | 425 | 429 | 500..=599))
                || matches!(
                    delivery.error.as_deref(),
                    Some("timeout" | "connection failed")
                );
            let probe = admission == Admission::Probe;
            // After the delivery, which may have taken its whole timeout: the cool-down starts
            // when the failure is known.
            let now_ms = now_ms();
            let recorded = if unhealthy {
                breaker.failed(&circuit, probe, now_ms).await.map(|_| ())
            } else if delivery.status.is_some() {
                breaker.succeeded(&circuit, now_ms).await
            } else {
                Ok(())
            };
            if let Err(error) = recorded {
                tracing::warn!(%error, "could not record the delivery in the circuit breaker");
            }
        }
        let last_attempt = attempt >= self.settings.max_attempts;
        let (outcome, error_class): (Result<&'static str, Failure>, Option<&str>) =
            match (delivery.status, delivery.error.as_deref()) {
                (Some(200..=299), _) => (Ok("sent"), None),
                (Some(410), _) => (
                    Err(Failure::permanent(
                        DeadLetterCode::EndpointGone,
                        "the endpoint answered 410 Gone; disabled",
                    )),
                    Some("permanent"),
                ),
                (Some(408 | 425 | 429 | 500..=599), _)
                | (None, Some("timeout" | "connection failed")) => {
                    let reason = match delivery.status {
                        Some(status) => format!("the endpoint answered {status}"),
                        None => format!(
                            "delivery failed: {}",
                            delivery.error.as_deref().unwrap_or("")
                        ),
                    };
                    if last_attempt {
                        (
                            Err(Failure::permanent(
                                DeadLetterCode::RetriesExhausted,
                                format!("{reason}; gave up after {attempt} attempts"),
                            )),
                            Some("transient"),
                        )
                    } else {
                        let failure = match delivery.retry_after {
                            Some(seconds) => Failure::RetryAfter { reason, seconds },
                            None => Failure::Transient(reason),
                        };
                        (Err(failure), Some("transient"))
                    }
                }
                (Some(status), _) => (
                    Err(Failure::permanent(
                        DeadLetterCode::DeliveryRejected,
                        format!("the endpoint answered {status}"),
                    )),
                    Some("permanent"),
                ),
                (None, Some("rejected")) => (
                    Err(Failure::permanent(
                        DeadLetterCode::DeliveryRejected,
                        "the email was rejected",
                    )),
                    Some("permanent"),
                ),
                (None, _) => (
                    Err(Failure::permanent(
                        DeadLetterCode::DeliveryRejected,
                        "private address refused",
                    )),
                    Some("permanent"),
                ),
            };
        let (tx, _) = connection.tenant_tx(&company).await.map_err(db)?;
        let status_code = delivery.status.map(i32::from);
        let attempt_number = i32::try_from(attempt).unwrap_or(i32::MAX);
        let retry_secs = match &outcome {
            Err(Failure::RetryAfter { seconds, .. }) => Some(f64::from(*seconds)),
            Err(Failure::Transient(_)) => Some(0.0),
            _ => None,
        };
        tx.execute(
            "INSERT INTO delivery_attempts (company_id, reminder_id, endpoint_id, attempt, status_code,
                 latency_ms, error_class, next_retry_at)
             VALUES (get_current_company_id(), $1, $2, $3, $4, $5, $6,
                     now() + make_interval(secs => $7::float8))
             ON CONFLICT (reminder_id, attempt) DO NOTHING",
            &[&job.reminder_id, &endpoint_id, &attempt_number, &status_code, &delivery.latency_ms, &error_class, &retry_secs],
        )
        .await
        .map_err(db)?;
        match &outcome {
            Ok(_) => {
                tx.execute(
                    "UPDATE reminders SET status = 'sent' WHERE id = $1 AND status IN ('pending', 'enqueued')",
                    &[&job.reminder_id],
                )
                .await
                .map_err(db)?;
                if let Some(variant_id) = variant_id {
                    tx.execute(
                        "INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id)
                         VALUES (get_current_company_id(), $1, $2, $3) ON CONFLICT (reminder_id) DO NOTHING",
                        &[&variant_id, &job.reminder_id, &job.case_id],
                    )
                    .await
                    .map_err(db)?;
                }
            }
            Err(Failure::Permanent(_)) => {
                if delivery.status == Some(410) {
                    tx.execute(
                        "UPDATE reminder_endpoints SET status = 'disabled', disabled_reason = '410 Gone' WHERE id = $1",
                        &[&endpoint_id],
                    )
                    .await
                    .map_err(db)?;
                }
                tx.execute(
                    "UPDATE reminders SET status = 'failed' WHERE id = $1 AND status IN ('pending', 'enqueued')",
                    &[&job.reminder_id],
                )
                .await
                .map_err(db)?;
            }
            Err(_) => {}
        }
        tx.commit().await.map_err(db)?;
        outcome
    }
}

/// The `function` dimension of this function's metrics.
pub const FUNCTION: &str = "send-reminders";

pub use lambda_runtime::Error;

pub struct SendSettings {
    pub database: crate::db::DbSettings,
    pub dlq_url: String,
    /// The circuit breaker's DynamoDB table (none: no breaker).
    pub breaker_table: Option<String>,
    pub keys: KeyRing,
    pub sender: SenderSettings,
}

impl SendSettings {
    pub fn from_env(env: &impl crate::config::Env) -> Result<Self, crate::config::SettingsError> {
        use crate::config;
        Ok(Self {
            database: crate::db::DbSettings::new(config::required(env, "DATABASE_URL")?),
            dlq_url: config::required(env, "REMINDERS_DLQ_URL")?,
            breaker_table: env.get("BREAKER_TABLE").filter(|t| !t.is_empty()),
            keys: config::key_ring(env)?,
            sender: SenderSettings {
                production: crate::config::Deployment::from_env(env).is_production(),
                timeout: Duration::from_secs(config::parsed_or(
                    env,
                    "DELIVERY_TIMEOUT_SECS",
                    10,
                    "a whole number of seconds",
                )?),
                max_attempts: config::parsed_or(env, "MAX_ATTEMPTS", 5, "a whole number")?,
                click_base_url: env.get("CLICK_BASE_URL").filter(|u| !u.is_empty()),
                link_ttl: Duration::from_secs(
                    86_400
                        * config::parsed_or::<u64>(
                            env,
                            "LINK_TTL_DAYS",
                            30,
                            "a whole number of days",
                        )?,
                ),
            },
        })
    }
}

/// Everything a batch needs, built once per container.
pub struct ReminderProcessor<P = crate::aws::SqsRedelivery> {
    pub runner: crate::consumer::BatchRunner<P>,
    pub database: crate::db::Database,
    pub sender: Sender,
    pub metrics: Arc<dyn crate::metrics::MetricsSink>,
}

impl<P: crate::consumer::DeadLetters + crate::consumer::Visibility> ReminderProcessor<P> {
    pub async fn handle_batch(
        &self,
        event: &aws_lambda_events::event::sqs::SqsEvent,
    ) -> aws_lambda_events::event::sqs::SqsBatchResponse {
        let started = Instant::now();
        let (response, stats) = self
            .runner
            .run(event, async |record| {
                let job: ReminderJob = serde_json::from_str(record.body.as_deref().unwrap_or_default())
                    .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "not a reminder job"))?;
                let attempt = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let mut connection = self
                    .database
                    .client()
                    .await
                    .map_err(|e| Failure::TransientBatch(e.to_string()))?;
                let outcome = self.sender.deliver(&mut connection, &job, attempt).await?;
                tracing::info!(reminder_id = job.reminder_id, company_id = %job.company_id, attempt, outcome, "reminder handled");
                Ok(())
            })
            .await;
        crate::metrics::emit_function_metrics(
            &*self.metrics,
            FUNCTION,
            &[
                ("reminders_handled", "Count", stats.succeeded() as u64),
                ("reminders_dead_lettered", "Count", stats.permanent() as u64),
                ("reminders_retrying", "Count", stats.transient() as u64),
                (
                    "batch_duration",
                    "Milliseconds",
                    started.elapsed().as_millis() as u64,
                ),
            ],
        );
        response
    }
}

/// The whole of `send-reminders`' `main`.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    use lambda_runtime::{service_fn, LambdaEvent};
    crate::telemetry::init(crate::telemetry::LogFormat::Json);
    let settings = SendSettings::from_env(&crate::config::ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let sdk = crate::aws::sdk_config_for(crate::aws::Patience::Background).await;
    let processor = ReminderProcessor {
        runner: crate::consumer::BatchRunner {
            ports: crate::aws::SqsRedelivery::new(aws_sdk_sqs::Client::new(&sdk), settings.dlq_url),
            backoff: crate::consumer::Backoff::default(),
        },
        database: crate::db::Database::new(settings.database),
        sender: {
            let sender = Sender::new(settings.sender, settings.keys)?
                .with_email(aws_sdk_sesv2::Client::new(&sdk));
            match settings.breaker_table {
                Some(table) => sender.with_breaker(crate::aws::DynamoBreaker::new(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    table,
                    crate::aws::BreakerPolicy::default(),
                )),
                None => sender,
            }
        },
        metrics: Arc::new(crate::metrics::Stdout),
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>(Box::pin(processor.handle_batch(&event.payload)).await)
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_known_fields_and_leave_nothing_unfilled() {
        let fields = BTreeMap::from([
            ("amount", "49.00".to_owned()),
            ("currency", "USD".to_owned()),
        ]);
        assert_eq!(
            render("Pay {{ amount }} {{currency}} now", &fields),
            "Pay 49.00 USD now"
        );
        assert_eq!(render("{{unknown}}!", &fields), "!");
        assert_eq!(render("open {{amount", &fields), "open {{amount");
        assert_eq!(decimal(4900), "49.00");
        assert_eq!(decimal(5), "0.05");
    }

    #[test]
    fn private_loopback_and_link_local_addresses_are_refused() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        for url in [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://169.254.169.254/latest",
        ] {
            assert!(refuses_literal(&reqwest::Url::parse(url).unwrap()), "{url}");
        }
        assert!(!refuses_literal(
            &reqwest::Url::parse("https://hooks.example.com/x").unwrap()
        ));
    }
}
