//! Postgres: connections, tenant context, migrations.

pub mod audit;
mod connect;
pub mod migrate;
mod tenant;

pub use connect::{connect, ConnectError};
pub use tenant::{tenant_transaction, CompanyId, InvalidCompanyId};
