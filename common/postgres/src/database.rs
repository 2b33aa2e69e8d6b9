//! The consumer's database connection: one per container (the connection budget is the sum of
//! consumers' MaximumConcurrency), opened on first use, checked after idling (a Lambda container
//! is frozen between invocations and its connection may have died meanwhile), and re-opened
//! with backoff: while the database is down, callers fail at once instead of waiting on it.

use std::time::{Duration, Instant};

use crate::{connect_with, Connection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

#[derive(Debug, Clone)]
pub struct DbSettings {
    /// The application role's URL. Never logged.
    pub url: String,
    pub statement_timeout: Duration,
    /// A connection unused for longer than this is checked with a round trip before use.
    pub check_after_idle: Duration,
    /// Waits between failed connection attempts: doubling from `min` up to `max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            statement_timeout: Duration::from_secs(5),
            check_after_idle: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// The database cannot be used right now: a batch-wide transient failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DbUnavailable {
    #[error("{0}")]
    Unreachable(String),
    #[error("database unreachable; next connection attempt in {0:?} (after {1} failed attempts)")]
    BackingOff(Duration, u32),
}

#[derive(Default)]
struct State {
    client: Option<Connection>,
    last_used: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
}

pub struct Database {
    settings: DbSettings,
    state: Mutex<State>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database { .. }")
    }
}

impl Database {
    /// No connection is made until the first [`Database::client`].
    pub fn new(settings: DbSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// The container's connection, (re)opened as needed. Holding the guard serializes use.
    pub async fn client(&self) -> Result<MappedMutexGuard<'_, Connection>, DbUnavailable> {
        let mut state = self.state.lock().await;
        if let Some(client) = &state.client {
            let idle_too_long = state
                .last_used
                .is_some_and(|t| t.elapsed() > self.settings.check_after_idle);
            let dead = client.is_closed()
                || (idle_too_long
                    && tokio::time::timeout(
                        self.settings.statement_timeout,
                        client.simple_query("SELECT 1"),
                    )
                    .await
                    .map_or(true, |r| r.is_err()));
            if dead {
                tracing::warn!("database connection lost; reconnecting");
                state.client = None;
            }
        }
        if state.client.is_none() {
            if let Some(at) = state.retry_at {
                let now = Instant::now();
                if now < at {
                    return Err(DbUnavailable::BackingOff(at - now, state.failures));
                }
            }
            match connect_with(&self.settings.url, Some(self.settings.statement_timeout)).await {
                Ok(client) => {
                    state.client = Some(Connection::from(client));
                    state.failures = 0;
                    state.retry_at = None;
                }
                Err(error) => {
                    state.failures += 1;
                    let wait = self.reconnect_wait(state.failures);
                    state.retry_at = Some(Instant::now() + wait);
                    return Err(DbUnavailable::Unreachable(error.to_string()));
                }
            }
        }
        state.last_used = Some(Instant::now());
        MutexGuard::try_map(state, |s| s.client.as_mut())
            .map_err(|_| DbUnavailable::Unreachable("no connection".into()))
    }

    fn reconnect_wait(&self, failures: u32) -> Duration {
        let doubled = self
            .settings
            .reconnect_min
            .saturating_mul(1 << failures.saturating_sub(1).min(16));
        doubled.min(self.settings.reconnect_max)
    }
}
