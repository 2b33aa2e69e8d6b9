//! Inlet's core: what every layer shares and nothing that does I/O.
//!
//! Ids, error classes, the clock, configuration parsing and the key ring. **Architecture
//! invariant:** no async runtime, no network, database or AWS crate; everything here is
//! testable as plain functions.

pub mod api_key;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod failure;
pub mod ids;

pub use failure::{DeadLetterCode, ErrorClass, Failure, Permanent, StoreError};
pub use ids::{CompanyId, InvalidCompanyId, InvalidSourceId, SourceId};
