//! Every 5 minutes: stuck reminders given back, the events queue's age and silent sources checked.

use inlet_lambda::ops;

#[tokio::main]
async fn main() -> Result<(), ops::Error> {
    ops::run_watchdog().await
}
