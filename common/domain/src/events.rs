//! One queue record of the events queue: decode the envelope, process it through the ledger in
//! its tenant's context, log what happened. The Lambda wiring runs this per record, then notes
//! the batch's activity per source.

use std::collections::BTreeMap;

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

/// How a record ended, and where its event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub outcome: Processed,
    pub company_id: String,
    pub source_id: String,
    pub provider: String,
    /// RFC 3339: when intake accepted it.
    pub received_at: String,
}

/// Processes one record's body. The database being unreachable stops the batch.
pub async fn handle_record(
    database: &Database,
    projections: &Projections,
    keys: &KeyRing,
    body: &[u8],
) -> Result<Handled, Failure> {
    let envelope = Envelope::from_json(body).map_err(undecodable)?;
    let mut client = database
        .client()
        .await
        .map_err(|e| Failure::TransientBatch(e.to_string()))?;
    let outcome = process(&mut client, &envelope, projections, keys).await?;
    let meta = envelope.meta;
    tracing::info!(
        company_id = %meta.company_id,
        provider = %meta.provider,
        event_type = %meta.event_type,
        event_id = %meta.event_id,
        outcome = outcome.status(),
        replay = meta.replay,
        "event processed"
    );
    if outcome == Processed::Stale {
        tracing::info!(object_id = ?meta.object_id, "older than the last applied event for its object");
    }
    Ok(Handled {
        outcome,
        company_id: meta.company_id.into_owned(),
        source_id: meta.source_id.into_owned(),
        provider: meta.provider.into_owned(),
        received_at: meta.received_at,
    })
}

/// A batch's events per (company, source), for the no-data check: one statement per source,
/// all in one transaction. `queue_age_ms`: the batch's largest wait in the queue.
pub async fn note_activity(
    database: &Database,
    handled: &[Handled],
    queue_age_ms: i64,
) -> Result<(), Failure> {
    let mut sources: BTreeMap<(&str, &str), (&str, Vec<&str>)> = BTreeMap::new();
    for record in handled {
        sources
            .entry((&record.company_id, &record.source_id))
            .or_insert_with(|| (&record.provider, Vec::new()))
            .1
            .push(&record.received_at);
    }
    if sources.is_empty() {
        return Ok(());
    }
    let mut client = database
        .client()
        .await
        .map_err(|e| Failure::TransientBatch(e.to_string()))?;
    let tx = client.tx().await?;
    for ((company, source), (provider, received)) in &sources {
        tx.execute(
            "SELECT note_source_activity($1, $2, $3, $4::text[]::timestamptz[], $5)",
            &[company, source, provider, received, &queue_age_ms],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
