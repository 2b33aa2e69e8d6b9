//! Inlet's library: everything that can be tested without Lambda.
//!
//! `functions/*` only wire configuration and clients, then call handlers that live here.

pub mod aws;
pub mod config;
pub mod consumer;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod intake;
pub mod metrics;
pub mod providers;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;
