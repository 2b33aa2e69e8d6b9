//! Logging set-up shared by every binary: JSON lines for Lambda, readable text for a terminal.

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (what CloudWatch and the local cloud expect).
    Json,
    /// Human-readable lines for a terminal.
    Text,
}

/// Installs the global subscriber once. The level comes from `RUST_LOG` (default `info`).
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
}
