//! What the `schedule-reminders` cron (EventBridge, every minute) does: claims due reminders across
//! tenants through `claim_due_reminders` (SECURITY DEFINER, SKIP LOCKED, bounded) and enqueues
//! one job per reminder to the reminders queue, ten per SendMessageBatch call.
//!
//! Claim, enqueue and the release of whatever did not reach the queue happen in one
//! transaction: a crash before COMMIT leaves every claimed reminder pending (a job that did go
//! out meanwhile carries the same key the next run gives it, and the sender delivers a reminder
//! once). Overlapping runs never take the same reminder.

use std::time::{Duration, Instant};

use inlet_core::Failure;
use inlet_postgres::Connection;

use super::ReminderJob;
use crate::audit::{self, Actor};
use crate::ports::ReminderQueue;

/// SQS's SendMessageBatch limit.
pub const SEND_BATCH: usize = 10;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub claimed: u64,
    pub enqueued: u64,
    pub released: u64,
}

/// One claim transaction: claim up to `limit`, enqueue, release what failed, commit.
async fn claim_and_enqueue(
    connection: &mut Connection,
    queue: &impl ReminderQueue,
    limit: i32,
    at_ms: i64,
) -> Result<RunStats, Failure> {
    let tx = connection.tx().await?;
    let rows = tx
        .query(
            "SELECT reminder_id, company_id, case_id,
                    to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), attempt
               FROM claim_due_reminders(to_timestamp($2::int8 / 1000.0), $1)",
            &[&limit, &at_ms],
        )
        .await?;
    let jobs: Vec<ReminderJob> = rows
        .iter()
        .map(|row| {
            let reminder_id: i64 = row.get(0);
            let attempt: i32 = row.get(4);
            ReminderJob {
                key: ReminderJob::key_for(reminder_id, attempt),
                reminder_id,
                company_id: row.get(1),
                case_id: row.get(2),
                due_at: row.get(3),
                attempt,
            }
        })
        .collect();
    let mut failed_ids = Vec::new();
    for chunk in jobs.chunks(SEND_BATCH) {
        let failed_keys = match queue.send_batch(chunk).await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, "a reminder batch did not reach the queue; releasing it");
                chunk.iter().map(|j| j.key.clone()).collect()
            }
        };
        failed_ids.extend(
            chunk
                .iter()
                .filter(|j| failed_keys.contains(&j.key))
                .map(|j| j.reminder_id),
        );
    }
    let released: i32 = if failed_ids.is_empty() {
        0
    } else {
        tx.query_one("SELECT release_reminders($1)", &[&failed_ids])
            .await?
            .get(0)
    };
    let claimed = jobs.len() as u64;
    let released = u64::try_from(released).unwrap_or(0);
    if claimed > 0 {
        audit::record_system(
            &tx,
            &Actor::Function("schedule-reminders"),
            "reminders.claim",
            &serde_json::json!({ "claimed": claimed, "released": released }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(RunStats {
        claimed,
        enqueued: claimed - failed_ids.len() as u64,
        released,
    })
}

/// Claims what is due at `at_ms` (epoch milliseconds: the run's clock) and enqueues it, until
/// nothing is due, the budget is spent, or a claim enqueued nothing.
pub async fn run_once(
    connection: &mut Connection,
    queue: &impl ReminderQueue,
    limit: i32,
    budget: Duration,
    at_ms: i64,
) -> Result<RunStats, Failure> {
    let started = Instant::now();
    let mut total = RunStats::default();
    loop {
        let stats = claim_and_enqueue(connection, queue, limit, at_ms).await?;
        total.claimed += stats.claimed;
        total.enqueued += stats.enqueued;
        total.released += stats.released;
        let full = stats.claimed >= u64::try_from(limit.max(1)).unwrap_or(1);
        if !full || stats.enqueued == 0 || started.elapsed() >= budget {
            return Ok(total);
        }
    }
}
