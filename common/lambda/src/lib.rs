//! The wiring: each function's settings from the environment (validated at cold start),
//! clients built once per container, telemetry, and its `run()`. `functions/*/src/main.rs`
//! only call one of these.
//!
//! **Architecture invariant:** the only crate that depends on `lambda_runtime` / `lambda_http`;
//! it decides nothing the layers below can decide.

pub mod after_response;
pub mod batch;
pub mod console;
pub mod export_member;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod process_events;
pub mod schedule_reminders;
pub mod send_reminders;
pub mod telemetry;
pub mod tenant_api;
pub mod track_click;
pub mod webhook;
