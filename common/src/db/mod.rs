//! Postgres: connections, tenant context, migrations.

pub mod audit;
mod classify;
mod connect;
mod connection;
pub mod migrate;
mod statements;

pub use classify::failure_for;
pub use connect::{connect, connect_with, ConnectError};
pub use connection::{Database, DbSettings, DbUnavailable};
pub use inlet_core::ids::{CompanyId, InvalidCompanyId};
pub use statements::tenant_transaction;
pub use statements::{Connection, Tenant, Tx};
