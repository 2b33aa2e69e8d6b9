//! Payment-recovery reminders: scheduling due ones, choosing and rendering the message,
//! delivering it, the delivery outcome table, A/B allocation and click links.

pub mod ab;
pub mod clicks;
pub mod outcome;
mod prepare;
pub mod render;
pub mod schedule;
pub mod send;

use serde::{Deserialize, Serialize};

/// One reminder job on the reminders queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderJob {
    /// `rem-{reminder_id}-{attempt}`: the same for every copy of one enqueue attempt.
    pub key: String,
    pub reminder_id: i64,
    pub company_id: String,
    pub case_id: i64,
    /// RFC 3339.
    pub due_at: String,
    pub attempt: i32,
}

impl ReminderJob {
    pub fn key_for(reminder_id: i64, attempt: i32) -> String {
        format!("rem-{reminder_id}-{attempt}")
    }
}
