//! Retention (daily): ledger rows and delivery attempts older than each company's retention are
//! deleted, sealed payloads older than its payload retention dropped (the row stays, still
//! deduplicating). In bounded batches, each its own transaction, until nothing is left or the
//! time budget is spent (the next run goes on); every committed batch is counted, and the run's
//! counts are written to the audit log's system chain.

use std::time::{Duration, Instant};

use inlet_core::Failure;
use inlet_postgres::Connection;

use crate::audit::{self, Actor};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub events_deleted: u64,
    pub attempts_deleted: u64,
    pub payloads_dropped: u64,
    /// Everything due was done within the budget.
    pub complete: bool,
}

/// The three kinds of work, in order: rows first, so no payload is dropped from a row about to
/// be deleted.
const STEPS: [&str; 3] = [
    "SELECT retention_delete_events($1)",
    "SELECT retention_drop_payloads($1)",
    "SELECT retention_delete_attempts($1)",
];

/// Runs until done or `budget` is spent. On a failure, `Err` carries the report of the batches
/// committed so far, so they are still counted.
pub async fn run(
    connection: &mut Connection,
    batch: i32,
    budget: Duration,
) -> Result<Report, (Report, Failure)> {
    let started = Instant::now();
    let mut report = Report::default();
    for (step, sql) in STEPS.iter().enumerate() {
        loop {
            if started.elapsed() >= budget {
                return match audit_run(connection, &report).await {
                    Ok(()) => Ok(report),
                    Err(failure) => Err((report, failure)),
                };
            }
            let done = async {
                let tx = connection.tx().await?;
                let n: i32 = tx.query_one(sql, &[&batch]).await?.get(0);
                tx.commit().await?;
                Ok::<_, Failure>(u64::try_from(n).unwrap_or(0))
            }
            .await
            .map_err(|failure| (report, failure))?;
            match step {
                0 => report.events_deleted += done,
                1 => report.payloads_dropped += done,
                _ => report.attempts_deleted += done,
            }
            if done < u64::try_from(batch.max(1)).unwrap_or(1) {
                break;
            }
        }
    }
    report.complete = true;
    match audit_run(connection, &report).await {
        Ok(()) => Ok(report),
        Err(failure) => Err((report, failure)),
    }
}

/// The run's counts, on the system chain (retention crosses tenants).
async fn audit_run(connection: &mut Connection, report: &Report) -> Result<(), Failure> {
    let details = serde_json::json!({
        "events_deleted": report.events_deleted,
        "payloads_dropped": report.payloads_dropped,
        "attempts_deleted": report.attempts_deleted,
    });
    let tx = connection.tx().await?;
    audit::record_system(
        &tx,
        &Actor::Function("retention"),
        "retention.run",
        &details,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
