//! A reminder's link: one click counted, then on to the company's recovery page.

use inlet_lambda::track_click;

#[tokio::main]
async fn main() -> Result<(), track_click::Error> {
    track_click::run().await
}
