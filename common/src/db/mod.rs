//! Postgres: connections, tenant context, migrations.

pub mod audit;
mod classify;
mod connect;
mod connection;
pub mod migrate;
mod statements;
mod tenant;

pub use classify::failure_for;
pub use connect::{connect, connect_with, ConnectError};
pub use connection::{Database, DbSettings, DbUnavailable};
pub use statements::{Connection, Tenant, Tx};
pub use tenant::{tenant_transaction, CompanyId, InvalidCompanyId};
