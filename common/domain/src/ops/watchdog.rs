//! The watchdog (every 5 minutes, one instance at a time): reminders stuck `enqueued` go back
//! to `pending`; the events queue's oldest message age is held to its thresholds; sources that
//! normally receive events and have gone silent are reported once each.

use std::time::Duration;

use inlet_core::{Failure, StoreError};
use inlet_postgres::Connection;
use serde_json::json;

use super::state;
use crate::audit::{self, Actor};
use crate::ports::{Alerts, Severity};

/// The advisory lock that keeps two watchdogs from running at once.
const LOCK_KEY: i64 = 0x001e_70a7_cd06;
const QUEUE_STATE: &str = "watchdog.queue_age";

#[derive(Debug, Clone)]
pub struct Policy {
    /// A reminder `enqueued` for longer than this is given back (3 x its expected lifetime).
    pub stuck_after: Duration,
    pub queue_age_warn: Duration,
    pub queue_age_page: Duration,
    /// A source is "normally receiving" after this many events.
    pub silent_min_events: i32,
    /// Silent when quiet for this many of its usual gaps...
    pub silent_intervals: f64,
    /// ...and at least this long.
    pub silent_min: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            // send-reminders: visibility 360 s x 5 receives; three times that.
            stuck_after: Duration::from_secs(3 * 360 * 5),
            queue_age_warn: Duration::from_secs(30),
            queue_age_page: Duration::from_secs(60),
            silent_min_events: 10,
            silent_intervals: 6.0,
            silent_min: Duration::from_secs(15 * 60),
        }
    }
}

/// A source gone silent.
#[derive(Debug, Clone, PartialEq)]
pub struct Silent {
    pub source_id: String,
    pub company_id: String,
    pub provider: String,
    /// RFC 3339.
    pub last_received_at: String,
    pub usual_gap_secs: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Another watchdog held the lock: this run did nothing.
    pub skipped: bool,
    pub requeued: u32,
    /// The estimated age of the events queue's oldest message.
    pub queue_age_ms: i64,
    pub silent: Vec<Silent>,
    pub alerts: Vec<(Severity, String)>,
}

/// Estimates the events queue's oldest message age: 0 without a backlog; with one, the age the
/// consumers last reported, or, when they have reported nothing for longer, that long.
pub fn queue_age_ms(backlog: u64, reported: Option<(i64, i64)>, now_ms: i64) -> i64 {
    if backlog == 0 {
        return 0;
    }
    match reported {
        Some((age_ms, at_ms)) => age_ms.max(now_ms - at_ms),
        None => 0,
    }
}

/// One run. `backlog`: the events queue's visible messages, read by the caller.
pub async fn run(
    connection: &mut Connection,
    alerts: &dyn Alerts,
    backlog: u64,
    policy: &Policy,
    now_ms: i64,
) -> Result<Report, Failure> {
    let mut report = Report::default();
    let tx = connection.tx().await?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?
        .get(0);
    if !locked {
        tx.commit().await?;
        report.skipped = true;
        return Ok(report);
    }
    let stuck_secs = policy.stuck_after.as_secs_f64();
    report.requeued = u32::try_from(
        tx.query_one(
            "SELECT requeue_stuck_reminders(make_interval(secs => $1), 1000)",
            &[&stuck_secs],
        )
        .await?
        .get::<_, i32>(0),
    )
    .unwrap_or(0);
    let silent = tx
        .query(
            "SELECT source_id, company_id, provider,
                    to_char(last_received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_received_at,
                    usual_gap_secs
               FROM mark_silent_sources(to_timestamp($1::int8 / 1000.0), $2, $3, make_interval(secs => $4))",
            &[&now_ms, &policy.silent_min_events, &policy.silent_intervals, &policy.silent_min.as_secs_f64()],
        )
        .await?;
    for (action, count) in [
        ("reminders.requeue_stuck", u64::from(report.requeued)),
        ("sources.mark_silent", silent.len() as u64),
    ] {
        if count > 0 {
            audit::record_system(
                &tx,
                &Actor::Function("watchdog"),
                action,
                &serde_json::json!({ "count": count }),
            )
            .await?;
        }
    }
    report.silent = silent
        .iter()
        .map(|row| Silent {
            source_id: row.get("source_id"),
            company_id: row.get("company_id"),
            provider: row.get("provider"),
            last_received_at: row.get("last_received_at"),
            usual_gap_secs: row.get("usual_gap_secs"),
        })
        .collect();
    let reported = tx
        .query_opt(
            "SELECT queue_age_ms, (extract(epoch FROM reported_at) * 1000)::int8 FROM latest_queue_age()",
            &[],
        )
        .await?
        .and_then(|row| Some((row.get::<_, Option<i64>>(0)?, row.get::<_, i64>(1))));
    // The silent sources are marked in this transaction: committed before alerting, so a crash
    // after the commit loses at most one alert, never repeats one every run.
    tx.commit().await?;
    report.queue_age_ms = queue_age_ms(backlog, reported, now_ms);

    if !report.silent.is_empty() {
        let mut text = String::from("These sources normally receive events and have gone quiet:\n");
        for s in &report.silent {
            text.push_str(&format!(
                "  {} ({}, company {}): last event {}, usually one every {:.0} s\n",
                s.source_id, s.provider, s.company_id, s.last_received_at, s.usual_gap_secs
            ));
        }
        let subject = format!("Inlet: {} source(s) silent", report.silent.len());
        alerts
            .publish(Severity::Warn, &subject, &text)
            .await
            .map_err(transient)?;
        report.alerts.push((Severity::Warn, subject));
    }

    // The queue's age: one alert per rise in severity, cleared when it falls back.
    let raised = state::get(connection, QUEUE_STATE)
        .await?
        .and_then(|v| v["severity"].as_str().map(str::to_owned));
    let severity = if report.queue_age_ms > millis(policy.queue_age_page) {
        Some(Severity::Page)
    } else if report.queue_age_ms > millis(policy.queue_age_warn) {
        Some(Severity::Warn)
    } else {
        None
    };
    let rises = match (severity, raised.as_deref()) {
        (Some(Severity::Page), Some("page")) | (Some(Severity::Warn), Some("warn" | "page")) => {
            false
        }
        (Some(_), _) => true,
        (None, _) => false,
    };
    if let Some(severity) = severity.filter(|_| rises) {
        let subject = format!(
            "Inlet: events queue's oldest message is {} s old",
            report.queue_age_ms / 1000
        );
        let text = format!(
            "{backlog} message(s) wait on the events queue; the oldest for about {} s (warn above {} s, page above {} s).",
            report.queue_age_ms / 1000,
            policy.queue_age_warn.as_secs(),
            policy.queue_age_page.as_secs()
        );
        alerts
            .publish(severity, &subject, &text)
            .await
            .map_err(transient)?;
        state::set(
            connection,
            QUEUE_STATE,
            &json!({ "severity": severity.as_str() }),
        )
        .await?;
        report.alerts.push((severity, subject));
    } else if severity.is_none() && raised.is_some() {
        state::set(connection, QUEUE_STATE, &json!({})).await?;
    }
    Ok(report)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn transient(error: StoreError) -> Failure {
    Failure::Transient(error.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_age_is_zero_without_a_backlog_and_grows_when_consumers_stop_reporting() {
        assert_eq!(queue_age_ms(0, Some((90_000, 0)), 100_000), 0);
        assert_eq!(queue_age_ms(5, Some((2_000, 99_000)), 100_000), 2_000);
        assert_eq!(queue_age_ms(5, Some((2_000, 40_000)), 100_000), 60_000);
        assert_eq!(queue_age_ms(5, None, 100_000), 0);
    }
}
