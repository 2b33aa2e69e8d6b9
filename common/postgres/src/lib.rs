//! Postgres: one connection per container, prepared statements, the tenant context, the error
//! classes of database errors, forward-only migrations and the tenancy audit.
//!
//! **Architecture invariant:** knows SQL plumbing, not business rules: no table of the domain
//! is named here except in the audit's catalog queries and the tenant context functions.

pub mod audit;
mod classify;
mod connect;
mod connection;
mod database;
pub mod migrate;
mod plan;

pub use classify::{failure_for, DbError};
pub use connect::{connect, connect_with, ConnectError};
pub use connection::{tenant_transaction, Connection, Tenant, Tx};
pub use database::{Database, DbSettings, DbUnavailable};
pub use plan::{Param, Plan};
