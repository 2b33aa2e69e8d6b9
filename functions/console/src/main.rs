//! The web console: events, failures, sources, recovery, A/B and health, through the tenant API.

use inlet_lambda::console;

#[tokio::main]
async fn main() -> Result<(), console::Error> {
    console::run().await
}
