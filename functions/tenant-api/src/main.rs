//! The tenant API: a tenant's events, sources, recovery cases and A/B results, by API key.

use inlet_lambda::tenant_api;

#[tokio::main]
async fn main() -> Result<(), tenant_api::Error> {
    tenant_api::run().await
}
