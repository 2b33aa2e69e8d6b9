//! A reminder's link: one click counted, then on to the company's recovery page.

use inlet_common::domain::clicks;

#[tokio::main]
async fn main() -> Result<(), clicks::Error> {
    clicks::run().await
}
