//! What events mean: the ledger that makes processing exactly-once in effect, and the
//! projections registered per (provider, event type).

pub mod ab;
pub mod clerk;
pub mod clicks;
pub mod ledger;
pub mod members;
pub mod process_events;
pub mod recovery;
pub mod schedule_reminders;
pub mod send_reminders;
pub mod stripe;
pub mod whop;

pub use ledger::{process, Event, Processed, ProjectFn, ProjectionFuture, Projections};
