//! Privacy export jobs: everything Inlet holds about a member, to the exports bucket.

use inlet_lambda::export_member;

#[tokio::main]
async fn main() -> Result<(), export_member::Error> {
    export_member::run().await
}
