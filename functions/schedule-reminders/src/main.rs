//! Every minute: due payment-recovery reminders onto the reminders queue, each once.

use inlet_lambda::schedule_reminders;

#[tokio::main]
async fn main() -> Result<(), schedule_reminders::Error> {
    schedule_reminders::run().await
}
