//! Error classes: what went wrong with one unit of work (a queue record, a cron step), and so
//! what to do with it. Every layer speaks these; only the wiring acts on them.

use std::fmt;

/// Why a record is in a dead-letter queue: a stable, machine-readable code carried as the
/// message attribute `inlet_error_code` (documented in docs/DEAD_LETTERS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterCode {
    /// The message is not an envelope (or job) at all.
    Undecodable,
    /// An envelope of a version this consumer does not read.
    UnknownVersion,
    /// The company the event names does not exist (yet): redrive once it does.
    UnknownTenant,
    /// The (source, event id) is recorded for another tenant.
    TenantConflict,
    /// The payload lacks what its projection needs.
    ProjectionRejected,
    /// The database refused the data (a constraint, an invalid value).
    DatabaseRejected,
    /// Retried until its attempts ran out (or moved by SQS after maxReceiveCount).
    RetriesExhausted,
    /// The receiving endpoint answered 410 Gone; it is disabled.
    EndpointGone,
    /// The receiver refused the delivery for good (a 4xx, a rejected email, a private address).
    DeliveryRejected,
    /// Nothing to deliver to: no active endpoint, no address, a secret that does not open.
    DeliveryUnconfigured,
    /// The record names something that does not exist for its tenant.
    NotFound,
}

impl DeadLetterCode {
    pub const ALL: [DeadLetterCode; 11] = [
        DeadLetterCode::Undecodable,
        DeadLetterCode::UnknownVersion,
        DeadLetterCode::UnknownTenant,
        DeadLetterCode::TenantConflict,
        DeadLetterCode::ProjectionRejected,
        DeadLetterCode::DatabaseRejected,
        DeadLetterCode::RetriesExhausted,
        DeadLetterCode::EndpointGone,
        DeadLetterCode::DeliveryRejected,
        DeadLetterCode::DeliveryUnconfigured,
        DeadLetterCode::NotFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterCode::Undecodable => "undecodable",
            DeadLetterCode::UnknownVersion => "unknown_version",
            DeadLetterCode::UnknownTenant => "unknown_tenant",
            DeadLetterCode::TenantConflict => "tenant_conflict",
            DeadLetterCode::ProjectionRejected => "projection_rejected",
            DeadLetterCode::DatabaseRejected => "database_rejected",
            DeadLetterCode::RetriesExhausted => "retries_exhausted",
            DeadLetterCode::EndpointGone => "endpoint_gone",
            DeadLetterCode::DeliveryRejected => "delivery_rejected",
            DeadLetterCode::DeliveryUnconfigured => "delivery_unconfigured",
            DeadLetterCode::NotFound => "not_found",
        }
    }

    pub fn parse(text: &str) -> Option<DeadLetterCode> {
        DeadLetterCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The class of a dead letter with this code: transient when retries ran out, else
    /// permanent.
    pub fn class(self) -> ErrorClass {
        match self {
            DeadLetterCode::RetriesExhausted => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

impl fmt::Display for DeadLetterCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure retrying cannot fix: its code and a reason for the operator (never a payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permanent {
    pub code: DeadLetterCode,
    pub reason: String,
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

/// What went wrong with one record, and so what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Bad envelope or impossible state: to the DLQ now, with its code.
    Permanent(Permanent),
    /// Database down, timeout, throttling: retry this record later.
    Transient(String),
    /// As `Transient`, for this record and every remaining one in the batch.
    TransientBatch(String),
    /// As `Transient`, not before `seconds` (a receiver's Retry-After, an open circuit).
    RetryAfter { reason: String, seconds: u32 },
}

impl Failure {
    pub fn permanent(code: DeadLetterCode, reason: impl Into<String>) -> Failure {
        Failure::Permanent(Permanent {
            code,
            reason: reason.into(),
        })
    }

    /// The reason, whatever the class.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Permanent(p) => &p.reason,
            Failure::Transient(reason)
            | Failure::TransientBatch(reason)
            | Failure::RetryAfter { reason, .. } => reason,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Permanent(p) => write!(f, "permanent ({p})"),
            Failure::Transient(reason) => write!(f, "transient ({reason})"),
            Failure::TransientBatch(reason) => write!(f, "transient, whole batch ({reason})"),
            Failure::RetryAfter { reason, seconds } => {
                write!(f, "transient, retry after {seconds} s ({reason})")
            }
        }
    }
}

impl std::error::Error for Failure {}

/// The class recorded on a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    Permanent,
    Transient,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorClass> {
        match text {
            "permanent" => Some(ErrorClass::Permanent),
            "transient" => Some(ErrorClass::Transient),
            _ => None,
        }
    }
}

/// A store did not answer (network, throttling, emulator down). The message names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dead_letter_code_reads_back_from_its_text() {
        for code in DeadLetterCode::ALL {
            assert_eq!(DeadLetterCode::parse(code.as_str()), Some(code));
            assert!(code
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(DeadLetterCode::parse("Undecodable"), None);
    }

    #[test]
    fn every_code_is_documented_in_docs_dead_letters_with_its_class() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/DEAD_LETTERS.md"),
        )
        .unwrap();
        for code in DeadLetterCode::ALL {
            let row = format!("| `{code}` | {} |", code.class().as_str());
            assert!(
                doc.contains(&row),
                "docs/DEAD_LETTERS.md lacks the row {row}"
            );
        }
    }

    #[test]
    fn a_permanent_failure_says_its_code_and_reason() {
        let failure = Failure::permanent(DeadLetterCode::UnknownTenant, "unknown tenant co_x");
        assert_eq!(failure.reason(), "unknown tenant co_x");
        assert_eq!(
            failure.to_string(),
            "permanent (unknown_tenant: unknown tenant co_x)"
        );
    }
}
