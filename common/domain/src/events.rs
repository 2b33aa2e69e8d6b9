//! One queue record of the events queue: decode the envelope, process it through the ledger in
//! its tenant's context, log what happened. The Lambda wiring runs this per record, then notes
//! the batch's activity per source.

use std::collections::BTreeMap;

use inlet_core::crypto::KeyRing;
use inlet_core::{DeadLetterCode, Failure};
use inlet_postgres::{Database, Tx};
use inlet_webhooks::envelope::{Envelope, EnvelopeError};

use crate::ledger::{process, process_batch, BatchFallback, Processed, Projections};

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
    Ok(handled(envelope, outcome))
}

/// Processes a whole batch's bodies in one transaction ([`process_batch`]). `None` when that
/// does not apply or did not go through (an undecodable body, a replay, an envelope the ledger
/// or its projection refused, a database error): nothing was committed, and the caller
/// processes each record alone with [`handle_record`], which settles each exactly as before.
/// The batch's activity notes (see [`note_activity`]) go into the same transaction.
pub async fn handle_batch(
    database: &Database,
    projections: &Projections,
    keys: &KeyRing,
    bodies: &[&[u8]],
    queue_age_ms: i64,
) -> Option<Vec<Handled>> {
    let envelopes = bodies
        .iter()
        .map(|body| Envelope::from_json(body))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let mut client = database.client().await.ok()?;
    let fell_back = |failure: Failure| {
        tracing::info!(%failure, "batch not processed whole; processing its records one by one");
    };
    let (tx, outcomes) = match process_batch(&mut client, &envelopes, projections, keys).await {
        Ok(done) => done,
        Err(BatchFallback::NotEligible) => return None,
        Err(BatchFallback::Failed(failure)) => {
            fell_back(failure);
            return None;
        }
    };
    let handled: Vec<Handled> = envelopes
        .into_iter()
        .zip(outcomes)
        .map(|(envelope, outcome)| handled(envelope, outcome))
        .collect();
    if let Err(failure) = note_in(&tx, &handled, queue_age_ms).await {
        fell_back(failure);
        return None;
    }
    if let Err(error) = tx.commit().await {
        fell_back(error.into());
        return None;
    }
    Some(handled)
}

/// Logs what became of an envelope and keeps what the activity notes need.
fn handled(envelope: Envelope<'_>, outcome: Processed) -> Handled {
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
        tracing::info!(event_type = %meta.event_type, "older than the last applied event for its object");
    }
    Handled {
        outcome,
        company_id: meta.company_id.into_owned(),
        source_id: meta.source_id.into_owned(),
        provider: meta.provider.into_owned(),
        received_at: meta.received_at,
    }
}

/// A batch's events per (company, source), for the no-data check, in a transaction of their
/// own. `queue_age_ms`: the batch's largest wait in the queue.
pub async fn note_activity(
    database: &Database,
    handled: &[Handled],
    queue_age_ms: i64,
) -> Result<(), Failure> {
    if handled.is_empty() {
        return Ok(());
    }
    let mut client = database
        .client()
        .await
        .map_err(|e| Failure::TransientBatch(e.to_string()))?;
    let tx = client.tx().await?;
    note_in(&tx, handled, queue_age_ms).await?;
    tx.commit().await?;
    Ok(())
}

/// One statement per (company, source), all sent together: one round trip.
async fn note_in(tx: &Tx<'_>, handled: &[Handled], queue_age_ms: i64) -> Result<(), Failure> {
    let mut sources: BTreeMap<(&str, &str), (&str, Vec<&str>)> = BTreeMap::new();
    for record in handled {
        sources
            .entry((&record.company_id, &record.source_id))
            .or_insert_with(|| (&record.provider, Vec::new()))
            .1
            .push(&record.received_at);
    }
    let notes = sources
        .iter()
        .map(|((company, source), (provider, received))| async move {
            tx.execute(
                "SELECT note_source_activity($1, $2, $3, $4::text[]::timestamptz[], $5)",
                &[company, source, provider, received, &queue_age_ms],
            )
            .await
        });
    for noted in futures_util::future::join_all(notes).await {
        noted?;
    }
    Ok(())
}
