//! Postgres: connections, tenant context, migrations.

pub mod audit;
mod connect;
mod connection;
pub mod migrate;
mod tenant;

pub use connect::{connect, connect_with, ConnectError};
pub use connection::{Database, DbSettings, DbUnavailable};
pub use tenant::{tenant_transaction, CompanyId, InvalidCompanyId};
