//! One queue record of the events queue: decode the envelope, process it through the ledger in
//! its tenant's context, log what happened. The Lambda wiring runs this per record.

use inlet_core::crypto::KeyRing;
use inlet_core::{DeadLetterCode, Failure};
use inlet_postgres::Database;
use inlet_webhooks::envelope::{Envelope, EnvelopeError};

use crate::ledger::{process, Processed, Projections};

/// What an envelope that cannot be read is: always permanent, coded by why.
pub fn undecodable(error: EnvelopeError) -> Failure {
    match error {
        EnvelopeError::UnknownVersion(_) => {
            Failure::permanent(DeadLetterCode::UnknownVersion, error.to_string())
        }
        EnvelopeError::Malformed(_) => {
            Failure::permanent(DeadLetterCode::Undecodable, error.to_string())
        }
    }
}

/// Processes one record's body. The database being unreachable stops the batch.
pub async fn handle_record(
    database: &Database,
    projections: &Projections,
    keys: &KeyRing,
    body: &[u8],
) -> Result<Processed, Failure> {
    let envelope = Envelope::from_json(body).map_err(undecodable)?;
    let mut client = database
        .client()
        .await
        .map_err(|e| Failure::TransientBatch(e.to_string()))?;
    let outcome = process(&mut client, &envelope, projections, keys).await?;
    tracing::info!(
        company_id = %envelope.meta.company_id,
        provider = %envelope.meta.provider,
        event_type = %envelope.meta.event_type,
        event_id = %envelope.meta.event_id,
        outcome = outcome.status(),
        "event processed"
    );
    if outcome == Processed::Stale {
        tracing::info!(object_id = ?envelope.meta.object_id, "older than the last applied event for its object");
    }
    Ok(outcome)
}
