//! The `inlet` CLI's library: template reading, local resources, sources, sample events and the
//! local Lambda runtime. `main.rs` only parses arguments and dispatches.

pub mod events;
pub mod http;
pub mod local;
pub mod resources;
pub mod runtime;
pub mod send;
pub mod sources;
pub mod template;
