//! Inlet's library: everything that can be tested without Lambda.
//!
//! `functions/*` only wire configuration and clients, then call handlers that live here.

pub mod aws;
pub mod consumer;
pub mod db;
pub mod domain;
pub mod intake;
pub mod metrics;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;

pub use inlet_core::{clock, config, crypto};
pub use inlet_webhooks::providers;
