//! The first stage of a delivery: in one transaction in the tenant's context, find out whether
//! the reminder is still due and, if so, everything the delivery needs, rendered.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use inlet_core::clock::now_secs;
use inlet_core::crypto::context;
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_postgres::{Connection, Tenant, Tx};

use super::ab::{self, Allocation, VariantStats};
use super::clicks::{self, ClickToken};
use super::render::{render, DEFAULT_BODY, DEFAULT_SUBJECT};
use super::send::Sender;
use super::ReminderJob;
use crate::money::format_minor;

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
pub(super) enum Prepared {
    Done(&'static str),
    Deliver {
        endpoint_id: i64,
        target: Target,
        variant_id: Option<i64>,
    },
}

/// Where a rendered reminder goes.
pub(super) enum Target {
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

    pub(super) async fn prepare(
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
                "SELECT r.status AS reminder_status, r.enqueue_attempts, c.status AS case_status,
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
        // The watchdog gave the reminder back to the scheduler, which enqueued a newer job.
        let enqueue_attempts: i32 = row.get("enqueue_attempts");
        if job.attempt < enqueue_attempts {
            tx.commit().await?;
            return Ok(Prepared::Done("superseded by a newer job"));
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
}
