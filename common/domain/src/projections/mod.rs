//! What each provider's events change in the tenant's tables. Every projection is idempotent
//! (upserts, `ON CONFLICT`), so a replayed event changes nothing twice.

pub mod clerk;
pub mod members;
pub mod recovery;
pub mod stripe;
pub mod whop;

use crate::ledger::Projections;

/// Every projection process-events applies. Event types without one are recorded `ignored`.
pub fn all() -> Projections {
    let projections = stripe::register(Projections::default());
    let projections = whop::register(projections);
    clerk::register(projections)
}
