//! Re-exports of the intake pipeline (now in inlet-webhooks), plus its Lambda wiring.

pub mod lambda;
#[cfg(any(test, feature = "testing"))]
pub mod memory;

pub use inlet_core::clock::rfc3339_ms;
pub use inlet_webhooks::envelope::*;
pub use inlet_webhooks::intake::*;

#[cfg(test)]
mod tests;
