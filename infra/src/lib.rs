//! The `inlet` CLI's library: template reading, local resources, sources, sample events and the
//! local Lambda runtime. `main.rs` only parses arguments and dispatches.

pub mod alerts;
pub mod audit;
pub mod companies;
pub mod database;
pub mod dlq;
pub mod events;
pub mod http;
pub mod keys;
pub mod local;
pub mod privacy;
pub mod replay;
pub mod resources;
pub mod runtime;
pub mod send;
pub mod sources;
pub mod template;

/// Readable log lines on stderr for a terminal; the level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
