//! Hourly: one digest of the dead-letter queues, only when something is new; settles reminders whose jobs died.

use inlet_lambda::ops;

#[tokio::main]
async fn main() -> Result<(), ops::Error> {
    ops::run_dlq_digest().await
}
