//! The domain: what events mean and what Inlet does about them.
//!
//! - [`ledger`]: one envelope, one transaction in its tenant's context, exactly once in effect;
//! - [`projections`]: what each provider's events change (members, memberships, payments,
//!   recovery cases), registered by provider and event type;
//! - [`reminders`]: payment-recovery reminders (scheduling, rendering, A/B, delivery outcomes);
//! - [`api`]: what the tenant API reads, in the caller's tenant transaction;
//! - [`audit`]: the tamper-evident audit log, written with the action it records;
//! - [`privacy`]: a member's data exported or erased everywhere, recorded and audited;
//! - [`ports`]: the only doors to the outside (queues, delivery channels, circuit breaker).
//!
//! **Architecture invariant:** no AWS SDK, no HTTP client, no Lambda type. SQL lives here; the
//! connection plumbing is inlet-postgres.

pub mod api;
pub mod audit;
pub mod companies;
pub mod events;
pub mod keys;
pub mod ledger;
pub mod money;
pub mod offboarding;
pub mod ops;
pub mod payload;
pub mod ports;
pub mod privacy;
pub mod projections;
pub mod reminders;

pub use ledger::{process, Event, Processed, ProjectFn, Projections};
