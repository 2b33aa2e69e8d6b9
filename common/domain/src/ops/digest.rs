//! The hourly DLQ digest: one message per run, only when something is new since the last one,
//! with each DLQ's counts by class and code, the oldest age and what is new. It also settles
//! reminders whose jobs died in the reminders DLQ.

use std::collections::BTreeMap;

use inlet_core::clock::age;
use inlet_core::{Failure, StoreError};
use inlet_postgres::Connection;
use serde_json::json;

use super::dead_letters::{release, scan};
use super::state;
use crate::audit::{self, Actor};
use crate::ports::{Alerts, DeadLetterQueue, DeadMessage, Severity};
use crate::reminders::ReminderJob;

/// One DLQ in a digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDigest {
    pub queue: String,
    /// (class, code) -> (count, new since the last digest).
    pub codes: BTreeMap<(String, String), (usize, usize)>,
    pub total: usize,
    pub new: usize,
    pub synthetic: usize,
    pub oldest_age_ms: i64,
}

/// Summarises one DLQ's messages; "new" means sent after `since_ms`.
pub fn summarize(
    queue: &str,
    messages: &[&DeadMessage],
    since_ms: i64,
    now_ms: i64,
) -> QueueDigest {
    let mut digest = QueueDigest {
        queue: queue.to_owned(),
        ..QueueDigest::default()
    };
    for message in messages {
        let is_new = message.sent_at_ms > since_ms;
        let entry = digest
            .codes
            .entry((message.class(), message.code()))
            .or_default();
        entry.0 += 1;
        entry.1 += usize::from(is_new);
        digest.total += 1;
        digest.new += usize::from(is_new);
        digest.synthetic += usize::from(message.is_synthetic());
        digest.oldest_age_ms = digest.oldest_age_ms.max(now_ms - message.sent_at_ms);
    }
    digest
}

/// The digest's subject and text; the subject says when it carries a synthetic test alert.
pub fn render(digests: &[QueueDigest]) -> (String, String) {
    let new: usize = digests.iter().map(|d| d.new).sum();
    let synthetic: usize = digests.iter().map(|d| d.synthetic).sum();
    let mut subject = format!("Inlet DLQ digest: {new} new dead letter(s)");
    if synthetic > 0 {
        subject.insert_str(0, "[synthetic] ");
    }
    let mut text = String::new();
    for digest in digests {
        text.push_str(&format!(
            "{}: {} message(s), {} new, oldest {}{}\n",
            digest.queue,
            digest.total,
            digest.new,
            age(digest.oldest_age_ms),
            if digest.synthetic > 0 {
                format!(", {} synthetic (inlet alerts test)", digest.synthetic)
            } else {
                String::new()
            }
        ));
        for ((class, code), (count, new)) in &digest.codes {
            text.push_str(&format!(
                "  {class:<9} {code:<24} {count:>6}  ({new} new)\n"
            ));
        }
    }
    text.push_str(
        "Inspect with `inlet dlq list`; move back with `inlet dlq redrive --dry-run` first.\n",
    );
    (subject, text)
}

/// The reminders a reminders-DLQ holds jobs of, with the code they died with.
pub fn dead_reminders(messages: &[&DeadMessage]) -> Vec<(i64, String)> {
    messages
        .iter()
        .filter_map(|m| {
            let job: ReminderJob = serde_json::from_str(&m.body).ok()?;
            Some((job.reminder_id, m.code()))
        })
        .collect()
}

/// The export requests an exports-DLQ holds jobs of: (company, request id, code).
pub fn dead_exports(messages: &[&DeadMessage]) -> Vec<(String, i64, String)> {
    messages
        .iter()
        .filter_map(|m| {
            let job: crate::privacy::ExportMessage = serde_json::from_str(&m.body).ok()?;
            Some((job.company_id, job.request_id, m.code()))
        })
        .collect()
}

/// A DLQ the digest reads.
#[derive(Debug, Clone)]
pub struct DigestQueue {
    /// Its name in reports (the template's logical id).
    pub name: String,
    pub url: String,
    /// The reminders DLQ: its jobs' reminders are settled.
    pub reminders: bool,
    /// The exports DLQ: its jobs' privacy requests are settled `failed`.
    pub exports: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestRun {
    pub digests: Vec<QueueDigest>,
    pub published: bool,
    pub settled_reminders: u64,
    pub failed_exports: u64,
}

const STATE_KEY: &str = "dlq_digest";

/// One digest run: read every DLQ (nothing consumed), settle dead reminders, publish when
/// something is new since the last published digest, remember when it was.
pub async fn run(
    connection: &mut Connection,
    port: &impl DeadLetterQueue,
    alerts: &dyn Alerts,
    queues: &[DigestQueue],
    now_ms: i64,
) -> Result<DigestRun, Failure> {
    let since_ms = state::get(connection, STATE_KEY)
        .await?
        .and_then(|v| v["last_digest_ms"].as_i64())
        .unwrap_or(0);
    let mut run = DigestRun::default();
    for queue in queues {
        let scanned = scan(port, &queue.url).await.map_err(transient)?;
        let messages: Vec<&DeadMessage> = scanned.iter().map(|r| &r.message).collect();
        if queue.reminders {
            let dead = dead_reminders(&messages);
            if !dead.is_empty() {
                let (ids, codes): (Vec<i64>, Vec<String>) = dead.into_iter().unzip();
                let tx = connection.tx().await?;
                let settled: i32 = tx
                    .query_one("SELECT fail_dead_reminders($1, $2)", &[&ids, &codes])
                    .await?
                    .get(0);
                if settled > 0 {
                    audit::record_system(
                        &tx,
                        &Actor::Function("dlq-digest"),
                        "reminders.fail_dead",
                        &serde_json::json!({ "count": settled }),
                    )
                    .await?;
                }
                tx.commit().await?;
                run.settled_reminders += u64::try_from(settled).unwrap_or(0);
            }
        }
        if queue.exports {
            let dead = dead_exports(&messages);
            if !dead.is_empty() {
                let companies: Vec<&str> = dead.iter().map(|(c, _, _)| c.as_str()).collect();
                let ids: Vec<i64> = dead.iter().map(|(_, id, _)| *id).collect();
                let codes: Vec<&str> = dead.iter().map(|(_, _, code)| code.as_str()).collect();
                let tx = connection.tx().await?;
                let failed: i32 = tx
                    .query_one(
                        "SELECT fail_dead_exports($1, $2, $3)",
                        &[&companies, &ids, &codes],
                    )
                    .await?
                    .get(0);
                if failed > 0 {
                    audit::record_system(
                        &tx,
                        &Actor::Function("dlq-digest"),
                        "privacy.export_failed",
                        &json!({ "count": failed }),
                    )
                    .await?;
                }
                tx.commit().await?;
                run.failed_exports += u64::try_from(failed).unwrap_or(0);
            }
        }
        run.digests
            .push(summarize(&queue.name, &messages, since_ms, now_ms));
        release(port, &queue.url, &scanned)
            .await
            .map_err(transient)?;
    }
    if run.digests.iter().any(|d| d.new > 0) {
        let (subject, text) = render(&run.digests);
        tracing::warn!(subject = %subject, digest = %text, "dead-letter digest");
        alerts
            .publish(Severity::Warn, &subject, &text)
            .await
            .map_err(transient)?;
        state::set(connection, STATE_KEY, &json!({ "last_digest_ms": now_ms })).await?;
        run.published = true;
    }
    Ok(run)
}

fn transient(error: StoreError) -> Failure {
    Failure::Transient(error.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(code: Option<&str>, sent_at_ms: i64, body: &str) -> DeadMessage {
        let mut attributes = BTreeMap::new();
        if let Some(code) = code {
            attributes.insert("inlet_error_code".to_owned(), code.to_owned());
            attributes.insert("inlet_error_class".to_owned(), "permanent".to_owned());
        }
        DeadMessage {
            message_id: format!("m{sent_at_ms}"),
            body: body.to_owned(),
            sent_at_ms,
            receive_count: 1,
            attributes,
        }
    }

    #[test]
    fn a_digest_counts_by_class_and_code_and_says_what_is_new() {
        let old = dead(Some("unknown_tenant"), 1_000, "{}");
        let new = dead(Some("undecodable"), 5_000, "{}");
        let moved = dead(None, 6_000, "{}");
        let digest = summarize("EventsDLQ", &[&old, &new, &moved], 2_000, 61_000);
        assert_eq!((digest.total, digest.new), (3, 2));
        assert_eq!(digest.oldest_age_ms, 60_000);
        assert_eq!(
            digest.codes[&("permanent".to_owned(), "unknown_tenant".to_owned())],
            (1, 0)
        );
        assert_eq!(
            digest.codes[&("transient".to_owned(), "retries_exhausted".to_owned())],
            (1, 1)
        );
        let (subject, text) = render(&[digest]);
        assert_eq!(subject, "Inlet DLQ digest: 2 new dead letter(s)");
        assert!(
            text.contains("EventsDLQ: 3 message(s), 2 new, oldest 60s"),
            "{text}"
        );
        assert!(text.contains("undecodable"), "{text}");
    }

    #[test]
    fn a_synthetic_dead_letter_marks_the_digest() {
        let mut synthetic = dead(Some("undecodable"), 5_000, "not an envelope");
        synthetic
            .attributes
            .insert("inlet_synthetic".to_owned(), "alerttest-1".to_owned());
        let real = dead(Some("undecodable"), 5_000, "not an envelope");
        let (subject, _) = render(&[summarize("EventsDLQ", &[&real], 0, 6_000)]);
        assert!(!subject.contains("synthetic"), "{subject}");
        let (subject, text) = render(&[summarize("EventsDLQ", &[&synthetic], 0, 6_000)]);
        assert!(subject.starts_with("[synthetic] "), "{subject}");
        assert!(text.contains("1 synthetic"), "{text}");
    }

    #[test]
    fn reminder_jobs_in_the_dlq_name_their_reminders_and_codes() {
        let job = r#"{"key":"rem-7-1","reminder_id":7,"company_id":"co","case_id":1,"due_at":"x","attempt":1}"#;
        let gone = dead(Some("endpoint_gone"), 1, job);
        let exhausted = dead(
            None,
            2,
            job.replace("\"reminder_id\":7", "\"reminder_id\":8")
                .as_str(),
        );
        let garbage = dead(Some("undecodable"), 3, "not a job");
        assert_eq!(
            dead_reminders(&[&gone, &exhausted, &garbage]),
            [
                (7, "endpoint_gone".to_owned()),
                (8, "retries_exhausted".to_owned())
            ]
        );
    }
}
