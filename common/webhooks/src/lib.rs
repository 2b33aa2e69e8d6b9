//! Webhooks: what providers send and how Inlet takes it in.
//!
//! - [`providers`]: each provider's signature scheme and how to read an event's identity;
//! - [`intake`]: the pipeline (size, source, rate limit, signature, identity, dedupe, enqueue),
//!   generic over its ports so every decision is testable in-process;
//! - [`envelope`]: envelope v1, the message between intake and the consumers.
//!
//! **Architecture invariant:** nothing here talks to AWS, Postgres or Lambda; adapters implement
//! the ports in [`intake`], and the wiring chooses them.

pub mod envelope;
pub mod intake;
pub mod providers;
