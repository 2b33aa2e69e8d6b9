//! The events queue's consumer: envelopes into tenant Postgres, exactly once in effect.

use inlet_lambda::process_events;

#[tokio::main]
async fn main() -> Result<(), process_events::Error> {
    process_events::run().await
}
