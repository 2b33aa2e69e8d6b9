//! Which database errors are worth retrying: the consumer's error classes for Postgres.

use tokio_postgres::error::SqlState;

use inlet_core::{DeadLetterCode, Failure};

/// A database error from a [`crate::Tx`] statement: `?` in a function returning
/// `Result<_, Failure>` classifies it with [`failure_for`].
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct DbError(#[from] pub tokio_postgres::Error);

impl DbError {
    /// The server's SQLSTATE, when the server answered.
    pub fn code(&self) -> Option<&SqlState> {
        self.0.code()
    }
}

impl From<DbError> for Failure {
    fn from(error: DbError) -> Failure {
        failure_for(&error.0)
    }
}

/// Maps a database error to what the batch runner should do with the record.
///
/// - connection gone, server shutting down, too many connections: every record would fail the
///   same way, so the batch stops (`TransientBatch`);
/// - lock and statement timeouts, serialization failures, deadlocks: retry this record;
/// - anything else the server rejected (bad data, violated constraints): retrying cannot help.
pub fn failure_for(error: &tokio_postgres::Error) -> Failure {
    let reason = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    };
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection itself failed.
        return Failure::TransientBatch(reason);
    };
    let batch_wide = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
    ];
    let retryable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
        SqlState::OUT_OF_MEMORY,
        SqlState::DISK_FULL,
    ];
    if batch_wide.contains(code) {
        Failure::TransientBatch(reason)
    } else if retryable.contains(code) {
        Failure::Transient(reason)
    } else {
        Failure::permanent(DeadLetterCode::DatabaseRejected, reason)
    }
}
