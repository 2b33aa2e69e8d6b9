//! The reminders queue's consumer: each due reminder delivered once, signed, and logged.

use inlet_lambda::send_reminders;

#[tokio::main]
async fn main() -> Result<(), send_reminders::Error> {
    send_reminders::run().await
}
