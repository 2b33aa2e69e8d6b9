//! Daily: ledger rows, delivery attempts and sealed payloads past their company's retention deleted.

use inlet_lambda::ops;

#[tokio::main]
async fn main() -> Result<(), ops::Error> {
    ops::run_retention().await
}
