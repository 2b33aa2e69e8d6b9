//! Dead letters sorted by cause: read a DLQ without consuming it, group its messages, redrive a
//! filtered selection to the queue they came from (a copy sent, then the original deleted, so a
//! crash in between at worst redelivers, which the ledger makes harmless), purge old ones.

use std::collections::BTreeMap;

use inlet_core::{DeadLetterCode, ErrorClass, StoreError};

use crate::ports::{DeadLetterQueue, DeadMessage, Received};

/// How long a scan hides what it has read, so it does not read it twice (and how long a dead
/// letter stays hidden if the process dies before releasing or deleting it).
pub const SCAN_HIDE_SECS: i32 = 60;
/// At most this many messages are read per queue by one command (a DLQ beyond it is reported as
/// truncated).
pub const SCAN_LIMIT: usize = 10_000;

/// Attributes a dead letter carries about itself, not copied back on a redrive.
const OWN_ATTRIBUTES: [&str; 4] = [
    "inlet_error_class",
    "inlet_error_code",
    "inlet_error_reason",
    "inlet_source_queue",
];

impl DeadMessage {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Its code: the consumer's `inlet_error_code`, or `retries_exhausted` for a message SQS
    /// moved itself after maxReceiveCount (it carries no Inlet attributes).
    pub fn code(&self) -> String {
        self.attribute("inlet_error_code")
            .unwrap_or(DeadLetterCode::RetriesExhausted.as_str())
            .to_owned()
    }

    pub fn class(&self) -> String {
        self.attribute("inlet_error_class")
            .unwrap_or(ErrorClass::Transient.as_str())
            .to_owned()
    }

    pub fn provider(&self) -> &str {
        self.attribute("provider").unwrap_or("-")
    }

    pub fn company(&self) -> &str {
        self.attribute("company_id").unwrap_or("-")
    }

    /// Whether SQS moved it (no consumer dead-lettered it).
    pub fn moved_by_sqs(&self) -> bool {
        self.attribute("inlet_error_code").is_none()
    }

    /// A test alert's message (`inlet alerts test`).
    pub fn is_synthetic(&self) -> bool {
        self.attribute("inlet_synthetic").is_some()
    }

    /// The ARN of the queue it came from, when the consumer recorded it.
    pub fn source_queue(&self) -> Option<&str> {
        self.attribute("inlet_source_queue")
            .filter(|arn| arn.starts_with("arn:"))
    }

    /// The attributes a redriven copy carries: the record's own, not the dead letter's.
    pub fn carried_attributes(&self) -> BTreeMap<String, String> {
        self.attributes
            .iter()
            .filter(|(name, _)| !OWN_ATTRIBUTES.contains(&name.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Reads every message of a DLQ (up to [`SCAN_LIMIT`]), hidden meanwhile. The caller acts on
/// some and must [`release`] the rest.
pub async fn scan(port: &impl DeadLetterQueue, queue: &str) -> Result<Vec<Received>, StoreError> {
    scan_hiding(port, queue, SCAN_HIDE_SECS).await
}

/// [`scan`], hiding what it reads for `hide_secs`.
pub async fn scan_hiding(
    port: &impl DeadLetterQueue,
    queue: &str,
    hide_secs: i32,
) -> Result<Vec<Received>, StoreError> {
    let mut all: Vec<Received> = Vec::new();
    while all.len() < SCAN_LIMIT {
        let batch = port.receive(queue, hide_secs).await?;
        if batch.is_empty() {
            break;
        }
        for received in batch {
            // SQS may hand a message twice within a scan; keep one.
            if !all
                .iter()
                .any(|r| r.message.message_id == received.message.message_id)
            {
                all.push(received);
            }
        }
    }
    Ok(all)
}

/// Makes scanned messages visible again.
pub async fn release(
    port: &impl DeadLetterQueue,
    queue: &str,
    received: &[Received],
) -> Result<(), StoreError> {
    let receipts: Vec<String> = received.iter().map(|r| r.receipt.clone()).collect();
    for chunk in receipts.chunks(10) {
        port.release(queue, chunk).await?;
    }
    Ok(())
}

/// Messages of one (class, code, provider, company): how many, the oldest's age, the largest
/// receive count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub count: usize,
    pub oldest_age_ms: i64,
    pub max_receive_count: u32,
}

/// Groups messages by (class, code, provider, company).
pub fn group(
    messages: &[&DeadMessage],
    now_ms: i64,
) -> BTreeMap<(String, String, String, String), Group> {
    let mut groups: BTreeMap<_, Group> = BTreeMap::new();
    for message in messages {
        let entry = groups
            .entry((
                message.class(),
                message.code(),
                message.provider().to_owned(),
                message.company().to_owned(),
            ))
            .or_default();
        entry.count += 1;
        entry.oldest_age_ms = entry.oldest_age_ms.max(now_ms - message.sent_at_ms);
        entry.max_receive_count = entry.max_receive_count.max(message.receive_count);
    }
    groups
}

/// Which dead letters a redrive moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub code: Option<String>,
    pub provider: Option<String>,
    pub company: Option<String>,
}

impl Filter {
    pub fn matches(&self, message: &DeadMessage) -> bool {
        self.code.as_deref().is_none_or(|c| message.code() == c)
            && self
                .provider
                .as_deref()
                .is_none_or(|p| message.provider() == p)
            && self
                .company
                .as_deref()
                .is_none_or(|c| message.company() == c)
    }
}

/// What a redrive did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moved {
    pub moved: Vec<DeadMessage>,
    /// Messages matching the filter whose source queue is unknown: left where they are.
    pub unroutable: Vec<String>,
}

/// How a redrive runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveOptions {
    pub limit: usize,
    /// Only report what would move.
    pub dry_run: bool,
    /// How long what it reads stays hidden: if the process dies mid-way, its dead letters
    /// reappear after this (and a second redrive sends them again; the ledger dedupes).
    pub hide_secs: i32,
}

impl RedriveOptions {
    pub fn new(limit: usize, dry_run: bool) -> Self {
        RedriveOptions {
            limit,
            dry_run,
            hide_secs: SCAN_HIDE_SECS,
        }
    }
}

/// Moves up to `limit` matching dead letters back to their source queue: the copy is sent
/// first, then the original deleted. `source_for` gives the queue URL a message goes back to.
/// With `dry_run` nothing is sent or deleted.
pub async fn redrive(
    port: &impl DeadLetterQueue,
    dlq: &str,
    source_for: impl Fn(&DeadMessage) -> Option<String>,
    filter: &Filter,
    options: RedriveOptions,
) -> Result<Moved, StoreError> {
    let RedriveOptions {
        limit,
        dry_run,
        hide_secs,
    } = options;
    let scanned = scan_hiding(port, dlq, hide_secs).await?;
    let mut result = Moved::default();
    let mut untouched = Vec::new();
    let mut failure = None;
    for received in scanned {
        let wanted = result.moved.len() < limit && filter.matches(&received.message);
        let target = wanted.then(|| source_for(&received.message)).flatten();
        match (wanted, target) {
            (true, None) => {
                result.unroutable.push(received.message.message_id.clone());
                untouched.push(received);
            }
            (true, Some(_)) if dry_run || failure.is_some() => {
                if dry_run {
                    result.moved.push(received.message.clone());
                }
                untouched.push(received);
            }
            (true, Some(target)) => {
                let message = &received.message;
                let sent = port
                    .send(&target, &message.body, &message.carried_attributes())
                    .await;
                match sent {
                    Ok(()) => {
                        // Deleted only once its copy is on the source queue.
                        if let Err(error) = port.delete(dlq, &received.receipt).await {
                            failure = Some(error);
                        }
                        result.moved.push(received.message.clone());
                    }
                    Err(error) => {
                        failure = Some(error);
                        untouched.push(received);
                    }
                }
            }
            (false, _) => untouched.push(received),
        }
    }
    release(port, dlq, &untouched).await?;
    match failure {
        Some(error) => Err(error),
        None => Ok(result),
    }
}

/// Deletes dead letters older than `older_than_ms` (all of them when dry, only listed).
pub async fn purge(
    port: &impl DeadLetterQueue,
    dlq: &str,
    older_than_ms: i64,
    now_ms: i64,
    dry_run: bool,
) -> Result<Vec<DeadMessage>, StoreError> {
    delete_matching(
        port,
        dlq,
        |message| now_ms - message.sent_at_ms > older_than_ms,
        dry_run,
    )
    .await
}

/// Deletes the dead letters `matches` picks (when dry, only lists them); the rest are released.
pub async fn delete_matching(
    port: &impl DeadLetterQueue,
    dlq: &str,
    matches: impl Fn(&DeadMessage) -> bool,
    dry_run: bool,
) -> Result<Vec<DeadMessage>, StoreError> {
    let scanned = scan(port, dlq).await?;
    let mut deleted = Vec::new();
    let mut untouched = Vec::new();
    for received in scanned {
        if matches(&received.message) {
            if !dry_run {
                port.delete(dlq, &received.receipt).await?;
            } else {
                untouched.push(received.clone());
            }
            deleted.push(received.message);
        } else {
            untouched.push(received);
        }
    }
    release(port, dlq, &untouched).await?;
    Ok(deleted)
}

/// Whether a dead letter holds any of `needles`: in its text, or in the payload its envelope
/// carries (which may be base64).
pub fn mentions(message: &DeadMessage, needles: &[String]) -> bool {
    let in_text = |text: &[u8]| {
        needles
            .iter()
            .any(|n| !n.is_empty() && text.windows(n.len()).any(|w| w == n.as_bytes()))
    };
    if in_text(message.body.as_bytes()) {
        return true;
    }
    match inlet_webhooks::envelope::Envelope::from_json(message.body.as_bytes()) {
        Ok(envelope) => in_text(&envelope.body),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(code: Option<&str>, provider: &str, company: &str, sent_at_ms: i64) -> DeadMessage {
        let mut attributes = BTreeMap::from([
            ("provider".to_owned(), provider.to_owned()),
            ("company_id".to_owned(), company.to_owned()),
        ]);
        if let Some(code) = code {
            attributes.insert("inlet_error_code".into(), code.into());
            attributes.insert("inlet_error_class".into(), "permanent".into());
            attributes.insert("inlet_error_reason".into(), "why".into());
        }
        DeadMessage {
            message_id: format!("m{sent_at_ms}"),
            body: "{}".into(),
            sent_at_ms,
            receive_count: 6,
            attributes,
        }
    }

    #[test]
    fn messages_group_by_class_code_provider_and_company_with_the_oldest_age() {
        let a = message(Some("unknown_tenant"), "whop", "co_x", 1_000);
        let b = message(Some("unknown_tenant"), "whop", "co_x", 4_000);
        let moved = message(None, "stripe", "co_y", 2_000);
        let groups = group(&[&a, &b, &moved], 10_000);
        let key = |class: &str, code: &str, p: &str, c: &str| {
            (
                class.to_owned(),
                code.to_owned(),
                p.to_owned(),
                c.to_owned(),
            )
        };
        assert_eq!(
            groups[&key("permanent", "unknown_tenant", "whop", "co_x")],
            Group {
                count: 2,
                oldest_age_ms: 9_000,
                max_receive_count: 6
            }
        );
        assert_eq!(
            groups[&key("transient", "retries_exhausted", "stripe", "co_y")].count,
            1,
            "moved by SQS: retries_exhausted"
        );
        assert!(moved.moved_by_sqs() && !a.moved_by_sqs());
    }

    #[test]
    fn a_redriven_copy_carries_the_records_attributes_not_the_dead_letters() {
        let a = message(Some("unknown_tenant"), "whop", "co_x", 1);
        let carried = a.carried_attributes();
        assert_eq!(carried.get("provider").map(String::as_str), Some("whop"));
        assert!(
            carried.keys().all(|k| !k.starts_with("inlet_")),
            "{carried:?}"
        );
    }

    #[test]
    fn filters_match_on_every_given_field() {
        let a = message(Some("unknown_tenant"), "whop", "co_x", 1);
        assert!(Filter::default().matches(&a));
        let by_code = Filter {
            code: Some("unknown_tenant".into()),
            ..Filter::default()
        };
        assert!(by_code.matches(&a));
        let other_company = Filter {
            company: Some("co_y".into()),
            ..by_code.clone()
        };
        assert!(!other_company.matches(&a));
        let exhausted = Filter {
            code: Some("retries_exhausted".into()),
            ..Filter::default()
        };
        assert!(exhausted.matches(&message(None, "stripe", "co_y", 1)));
    }
}
