//! CloudWatch metrics in the Embedded Metric Format (EMF): one JSON line per document on stdout,
//! which Lambda ships to CloudWatch Logs and CloudWatch turns into metrics. No API calls, no
//! latency added to a batch.
//!
//! Dimensions are a small fixed set (function, provider, outcome): never tenant ids, event ids or
//! anything else a sender controls, so the number of metric series stays bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Map, Value};

use inlet_webhooks::providers::Provider;

/// The CloudWatch namespace every Inlet metric lives in.
pub const NAMESPACE: &str = "Inlet";

/// The label budget: the only dimensions any metric may carry. A dimension is a closed type,
/// so another one cannot be written; each value set is bounded (functions, providers,
/// outcomes, queues and dead-letter codes are fixed lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    Function,
    Provider,
    Outcome,
    Queue,
    Code,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::Function,
        Dimension::Provider,
        Dimension::Outcome,
        Dimension::Queue,
        Dimension::Code,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Function => "function",
            Dimension::Provider => "provider",
            Dimension::Outcome => "outcome",
            Dimension::Queue => "queue",
            Dimension::Code => "code",
        }
    }
}

/// EMF allows at most 100 values per metric in one document.
const MAX_VALUES: usize = 100;

/// Where documents go. Lambda reads stdout; tests read a buffer.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, line: &str);
}

/// Writes each document as one line on stdout.
pub struct Stdout;

impl MetricsSink for Stdout {
    fn emit(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        // A metrics line that cannot be written must not fail the batch.
        let _ = writeln!(out, "{line}");
    }
}

/// Drops every document (benchmarks, and tests about something else).
pub struct Discard;

impl MetricsSink for Discard {
    fn emit(&self, _line: &str) {}
}

/// What became of one record, as a metric dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Applied to the projections.
    Processed,
    /// Recorded in the ledger only: no projection for its type.
    Ignored,
    /// Already completed: skipped.
    Duplicate,
    /// Older than the last applied event for its object.
    Stale,
    /// Sent to the dead-letter queue.
    Permanent,
    /// Left on the queue to retry later.
    Transient,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Permanent => "permanent",
            Outcome::Transient => "transient",
        }
    }
}

#[derive(Debug, Default)]
struct Group {
    count: u64,
    queue_age_ms: Vec<u64>,
}

/// The metrics of one consumer batch, grouped by (provider, outcome).
#[derive(Debug, Default)]
pub struct BatchMetrics {
    groups: BTreeMap<(&'static str, Outcome), Group>,
    records: u64,
    /// Ledger transactions the batch took: 1 when it went through whole, else one per record.
    pub transactions: u64,
}

/// A provider name usable as a dimension: one of the known providers, else `unknown`.
fn provider_dimension(name: Option<&str>) -> &'static str {
    name.and_then(Provider::parse)
        .map_or("unknown", Provider::as_str)
}

/// Milliseconds since the Unix epoch, as EMF timestamps and SQS's `SentTimestamp` count them.
pub fn now_ms() -> u64 {
    u64::try_from(inlet_core::clock::now_ms()).unwrap_or(0)
}

impl BatchMetrics {
    /// Counts one record. `sent_ms` is SQS's `SentTimestamp`; the queue age is measured against
    /// `now_ms`.
    pub fn record(
        &mut self,
        provider: Option<&str>,
        outcome: Outcome,
        sent_ms: Option<u64>,
        now_ms: u64,
    ) {
        let group = self
            .groups
            .entry((provider_dimension(provider), outcome))
            .or_default();
        group.count += 1;
        if let Some(sent) = sent_ms {
            if group.queue_age_ms.len() < MAX_VALUES {
                group.queue_age_ms.push(now_ms.saturating_sub(sent));
            }
        }
        self.records += 1;
    }

    /// The EMF documents for this batch: one per (provider, outcome) with `events` and
    /// `queue_age`, and one for the batch with `batch_duration`, `batch_size` and
    /// `batch_transactions`.
    pub fn documents(&self, function: &str, duration: Duration, timestamp_ms: u64) -> Vec<Value> {
        let mut documents = Vec::with_capacity(self.groups.len() + 1);
        for ((provider, outcome), group) in &self.groups {
            let mut metrics = vec![("events", "Count", json!(group.count))];
            if !group.queue_age_ms.is_empty() {
                metrics.push(("queue_age", "Milliseconds", json!(group.queue_age_ms)));
            }
            documents.push(document(
                timestamp_ms,
                &[
                    (Dimension::Function, function),
                    (Dimension::Provider, provider),
                    (Dimension::Outcome, outcome.as_str()),
                ],
                metrics,
            ));
        }
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        documents.push(document(
            timestamp_ms,
            &[(Dimension::Function, function)],
            vec![
                ("batch_duration", "Milliseconds", json!(millis)),
                ("batch_size", "Count", json!(self.records)),
                ("batch_transactions", "Count", json!(self.transactions)),
            ],
        ));
        documents
    }

    /// Writes this batch's documents to `sink`.
    pub fn emit(&self, sink: &dyn MetricsSink, function: &str, duration: Duration) {
        for document in self.documents(function, duration, now_ms()) {
            sink.emit(&document.to_string());
        }
    }
}

/// One document of per-run metrics with the `function` dimension only (e.g. a cron's counts).
pub fn emit_function_metrics(
    sink: &dyn MetricsSink,
    function: &str,
    metrics: &[(&str, &str, u64)],
) {
    let values = metrics
        .iter()
        .map(|(name, unit, value)| (*name, *unit, json!(value)))
        .collect();
    sink.emit(&document(now_ms(), &[(Dimension::Function, function)], values).to_string());
}

/// What one invocation did, in the metrics every function emits: `duration_ms`, `success` and
/// `failure` (records for a consumer, the invocation for a cron or a request), and
/// `retries_total` (records left to retry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Invocation {
    pub duration: Duration,
    pub success: u64,
    pub failure: u64,
    pub retries: u64,
}

/// The per-invocation document, by function.
pub fn invocation_document(function: &str, invocation: &Invocation, timestamp_ms: u64) -> Value {
    let millis = u64::try_from(invocation.duration.as_millis()).unwrap_or(u64::MAX);
    document(
        timestamp_ms,
        &[(Dimension::Function, function)],
        vec![
            ("duration_ms", "Milliseconds", json!(millis)),
            ("success", "Count", json!(invocation.success)),
            ("failure", "Count", json!(invocation.failure)),
            ("retries_total", "Count", json!(invocation.retries)),
        ],
    )
}

/// An HTTP request's invocation: a failure only when the function answered 5xx (a 4xx is the
/// function doing its job).
pub fn answered(duration: Duration, status: u16) -> Invocation {
    Invocation {
        duration,
        success: u64::from(status < 500),
        failure: u64::from(status >= 500),
        retries: 0,
    }
}

pub fn emit_invocation(sink: &dyn MetricsSink, function: &str, invocation: &Invocation) {
    sink.emit(&invocation_document(function, invocation, now_ms()).to_string());
}

/// One intake request, counted by what it was answered (`accepted`, `duplicate` or the
/// problem's code): the dashboard's intake answers by code.
pub fn emit_requests(sink: &dyn MetricsSink, function: &str, code: &str) {
    let document = document(
        now_ms(),
        &[(Dimension::Function, function), (Dimension::Code, code)],
        vec![("requests", "Count", json!(1))],
    );
    sink.emit(&document.to_string());
}

/// Counts per (queue, code) with the `queue` and `code` dimensions (dead letters in a digest).
pub fn emit_queue_counts(
    sink: &dyn MetricsSink,
    function: &str,
    metric: &str,
    counts: &[(&str, &str, u64)],
) {
    for (queue, code, count) in counts {
        let document = document(
            now_ms(),
            &[
                (Dimension::Function, function),
                (Dimension::Queue, queue),
                (Dimension::Code, code),
            ],
            vec![(metric, "Count", json!(count))],
        );
        sink.emit(&document.to_string());
    }
}

/// One EMF document: the dimensions and metric values at the root, described under `_aws`.
fn document(
    timestamp_ms: u64,
    dimensions: &[(Dimension, &str)],
    metrics: Vec<(&str, &str, Value)>,
) -> Value {
    let names: Vec<&str> = dimensions.iter().map(|(name, _)| name.as_str()).collect();
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [names],
                "Metrics": definitions,
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert(name.as_str().into(), Value::from(*value));
    }
    for (name, _, value) in metrics {
        root.insert(name.into(), value);
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps what it is given.
    #[derive(Default)]
    struct Lines(std::sync::Mutex<Vec<String>>);

    impl MetricsSink for Lines {
        fn emit(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_owned());
        }
    }

    /// The label budget: no metric may carry any other dimension.
    const BUDGET: [&str; 5] = ["function", "provider", "outcome", "queue", "code"];

    #[test]
    fn every_emitted_metric_stays_within_the_label_budget() {
        assert_eq!(Dimension::ALL.map(Dimension::as_str), BUDGET);
        let lines = Lines::default();
        let mut batch = BatchMetrics::default();
        batch.record(Some("stripe"), Outcome::Processed, Some(1), 2);
        batch.emit(&lines, "process-events", Duration::from_millis(3));
        emit_function_metrics(&lines, "watchdog", &[("silent_sources", "Count", 1)]);
        emit_invocation(&lines, "retention", &Invocation::default());
        emit_invocation(&lines, "webhook-stripe", &answered(Duration::ZERO, 503));
        emit_requests(&lines, "webhook-stripe", "signature_mismatch");
        emit_queue_counts(
            &lines,
            "dlq-digest",
            "dead_letters",
            &[("EventsDLQ", "unknown_tenant", 2)],
        );
        let lines = lines.0.into_inner().unwrap();
        assert!(lines.len() >= 7, "{lines:?}");
        for line in &lines {
            let document: Value = serde_json::from_str(line).unwrap();
            for set in document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .unwrap()
            {
                for dimension in set.as_array().unwrap() {
                    let name = dimension.as_str().unwrap();
                    assert!(
                        BUDGET.contains(&name),
                        "{name} is outside the label budget: {line}"
                    );
                    assert!(document.get(name).is_some(), "{name} has no value: {line}");
                }
            }
        }
    }

    #[test]
    fn no_code_outside_this_module_writes_metric_documents_by_hand() {
        // EMF written anywhere else could carry any dimension; all of it goes through
        // `document`, whose dimensions are a closed type.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut offenders = Vec::new();
        let mut stack = vec![
            root.join("common"),
            root.join("infra"),
            root.join("functions"),
        ];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() && !path.ends_with("target") {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("lambda/src/metrics.rs")
                    && std::fs::read_to_string(&path)
                        .unwrap_or_default()
                        .contains("CloudWatchMetrics")
                {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(offenders.is_empty(), "EMF written by hand in {offenders:?}");
    }

    #[test]
    fn groups_become_documents_cloudwatch_can_read() {
        let mut batch = BatchMetrics::default();
        batch.record(Some("stripe"), Outcome::Processed, Some(1_000), 1_250);
        batch.record(Some("stripe"), Outcome::Processed, Some(1_100), 1_250);
        batch.record(Some("whop"), Outcome::Permanent, None, 1_250);
        let documents = batch.documents("process-events", Duration::from_millis(42), 7);
        assert_eq!(documents.len(), 3);

        let stripe = &documents[0];
        assert_eq!(stripe["_aws"]["Timestamp"], 7);
        let directive = &stripe["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Inlet");
        assert_eq!(
            directive["Dimensions"],
            json!([["function", "provider", "outcome"]])
        );
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "events", "Unit": "Count"},
                {"Name": "queue_age", "Unit": "Milliseconds"}
            ])
        );
        assert_eq!(stripe["function"], "process-events");
        assert_eq!(stripe["provider"], "stripe");
        assert_eq!(stripe["outcome"], "processed");
        assert_eq!(stripe["events"], 2);
        assert_eq!(stripe["queue_age"], json!([250, 150]));

        let whop = &documents[1];
        assert_eq!(whop["outcome"], "permanent");
        assert_eq!(whop["events"], 1);
        assert!(whop.get("queue_age").is_none(), "no SentTimestamp, no age");

        let batch_doc = &documents[2];
        assert_eq!(
            batch_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function"]])
        );
        assert_eq!(batch_doc["batch_duration"], 42);
        assert_eq!(batch_doc["batch_size"], 3);
    }

    #[test]
    fn a_provider_the_system_does_not_know_is_one_bounded_dimension_value() {
        let mut batch = BatchMetrics::default();
        batch.record(Some("cust_8812-evil"), Outcome::Transient, None, 0);
        batch.record(None, Outcome::Transient, None, 0);
        let documents = batch.documents("f", Duration::ZERO, 0);
        assert_eq!(documents[0]["provider"], "unknown");
        assert_eq!(documents[0]["events"], 2);
    }

    #[test]
    fn queue_ages_stay_within_the_emf_value_limit() {
        let mut batch = BatchMetrics::default();
        for _ in 0..150 {
            batch.record(Some("github"), Outcome::Ignored, Some(0), 5);
        }
        let documents = batch.documents("f", Duration::ZERO, 0);
        assert_eq!(documents[0]["events"], 150);
        assert_eq!(
            documents[0]["queue_age"].as_array().map(Vec::len),
            Some(MAX_VALUES)
        );
    }

    #[test]
    fn a_clock_behind_the_queue_reads_as_zero_age_not_a_wrap() {
        let mut batch = BatchMetrics::default();
        batch.record(Some("slack"), Outcome::Duplicate, Some(2_000), 1_000);
        let documents = batch.documents("f", Duration::ZERO, 0);
        assert_eq!(documents[0]["queue_age"], json!([0]));
    }
}
