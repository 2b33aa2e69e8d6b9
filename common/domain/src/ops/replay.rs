//! Replay from the ledger: the envelope of a stored event rebuilt from its sealed payload (the
//! exact bytes intake accepted) and sent again, marked as a replay, so the consumer re-applies
//! it to its ledger row (see `ledger`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, Failure};
use inlet_postgres::Connection;

use crate::audit::{self, Actor, Entry};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta, ENVELOPE_VERSION};
use inlet_webhooks::intake::{EventQueue, QueueError};

/// Which ledger rows to replay. Every field narrows; `limit` caps the count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The provider's event id.
    pub event_id: Option<String>,
    /// The ledger's row id (what the tenant API calls an event's id).
    pub row_id: Option<i64>,
    pub company: Option<String>,
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
    pub limit: i64,
}

/// A ledger row, as a replay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub company_id: String,
    pub source_id: String,
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub status: String,
    /// (sealed bytes, key id); None when retention dropped it.
    pub payload: Option<(Vec<u8>, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0} selected event(s) have no payload any more (retention dropped it), e.g. {1}; narrow the selection")]
    PayloadDropped(usize, String),
    #[error("event {0}'s sealed payload does not open ({1}); is its key still in INLET_KEYS?")]
    Sealed(String, inlet_core::crypto::KeyRingError),
    #[error("sending to the events queue failed: {0}")]
    Queue(String),
    #[error(transparent)]
    Database(#[from] Failure),
}

/// The selected rows, oldest first (the order they happened in matters for stale checks).
/// Runs as the caller: the owner sees every tenant; an application role sees its tenant's.
pub async fn select(
    connection: &mut Connection,
    selection: &Selection,
) -> Result<Vec<Stored>, Failure> {
    const SQL: &str = concat!(
        "SELECT company_id, source_id, provider, provider_event_id, event_type, object_type, object_id,
                to_char(occurred_at AT TIME ZONE 'UTC', ",
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'",
        ") AS occurred_at,
                to_char(received_at AT TIME ZONE 'UTC', ",
        "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'",
        ") AS received_at,
                status, payload_enc, payload_key_id
           FROM webhook_events
          WHERE ($1::text IS NULL OR provider_event_id = $1)
            AND ($2::text IS NULL OR company_id = $2)
            AND ($3::text IS NULL OR provider = $3)
            AND ($4::text IS NULL OR event_type = $4)
            AND ($5::text IS NULL OR status = $5)
            AND ($6::text IS NULL OR received_at >= $6::text::timestamptz)
            AND ($7::text IS NULL OR received_at < $7::text::timestamptz)
            AND ($9::bigint IS NULL OR id = $9)
          ORDER BY received_at, id
          LIMIT $8"
    );
    // In the company's own context when there is one: the application role (the tenant API)
    // sees nothing otherwise; the owner sees every tenant without one.
    let tx = match selection.company.as_deref().map(CompanyId::parse) {
        Some(Ok(company)) => connection.tenant_tx(&company).await?.0,
        Some(Err(_)) => return Ok(Vec::new()),
        None => connection.tx().await?,
    };
    let rows = tx
        .query(
            SQL,
            &[
                &selection.event_id,
                &selection.company,
                &selection.provider,
                &selection.event_type,
                &selection.status,
                &selection.since,
                &selection.until,
                &selection.limit.clamp(0, 100_000),
                &selection.row_id,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|row| Stored {
            company_id: row.get("company_id"),
            source_id: row.get("source_id"),
            provider: row.get("provider"),
            event_id: row.get("provider_event_id"),
            event_type: row.get("event_type"),
            object_type: row.get("object_type"),
            object_id: row.get("object_id"),
            occurred_at: row.get("occurred_at"),
            received_at: row.get("received_at"),
            status: row.get("status"),
            payload: row
                .get::<_, Option<Vec<u8>>>("payload_enc")
                .zip(row.get::<_, Option<String>>("payload_key_id")),
        })
        .collect())
}

/// The envelope intake sent for this row, rebuilt from its sealed bytes, marked as a replay.
pub fn envelope(stored: &Stored, keys: &KeyRing) -> Result<Envelope<'static>, ReplayError> {
    let (sealed, key_id) = stored
        .payload
        .as_ref()
        .ok_or_else(|| ReplayError::PayloadDropped(1, stored.event_id.clone()))?;
    let body = keys
        .open_bytes(
            key_id,
            sealed,
            &context::payload(&stored.company_id, &stored.source_id, &stored.event_id),
        )
        .map_err(|e| ReplayError::Sealed(stored.event_id.clone(), e))?;
    let is_json = std::str::from_utf8(&body).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
    Ok(Envelope {
        meta: EnvelopeMeta {
            version: ENVELOPE_VERSION,
            source_id: Cow::Owned(stored.source_id.clone()),
            provider: Cow::Owned(stored.provider.clone()),
            company_id: Cow::Owned(stored.company_id.clone()),
            event_id: Cow::Owned(stored.event_id.clone()),
            event_type: Cow::Owned(stored.event_type.clone()),
            object_type: stored.object_type.clone().map(Cow::Owned),
            object_id: stored.object_id.clone().map(Cow::Owned),
            occurred_at: stored.occurred_at.clone(),
            received_at: stored.received_at.clone(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::for_body(&body, is_json),
            replay: true,
        },
        body: Cow::Owned(body),
    })
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// (company, event id) of every selected event.
    pub selected: Vec<(String, String)>,
    pub enqueued: usize,
}

/// Selects, checks every payload is still there and opens (nothing is sent otherwise), then
/// enqueues each as a replay. `dry_run` selects and checks only. What was sent is audited, one
/// row per company, even when the queue failed part way.
pub async fn replay(
    connection: &mut Connection,
    actor: &Actor,
    queue: &impl EventQueue,
    keys: &KeyRing,
    selection: &Selection,
    dry_run: bool,
) -> Result<Replayed, ReplayError> {
    let stored = select(connection, selection).await?;
    let dropped: Vec<&Stored> = stored.iter().filter(|s| s.payload.is_none()).collect();
    if let Some(first) = dropped.first() {
        return Err(ReplayError::PayloadDropped(
            dropped.len(),
            first.event_id.clone(),
        ));
    }
    let envelopes = stored
        .iter()
        .map(|s| envelope(s, keys))
        .collect::<Result<Vec<_>, _>>()?;
    let mut replayed = Replayed {
        selected: stored
            .iter()
            .map(|s| (s.company_id.clone(), s.event_id.clone()))
            .collect(),
        enqueued: 0,
    };
    if dry_run {
        return Ok(replayed);
    }
    let mut sent = Ok(());
    for envelope in &envelopes {
        if let Err(e) = queue.enqueue(envelope).await {
            sent = Err(match e {
                QueueError::TooLarge => ReplayError::Queue("the envelope is too large".into()),
                QueueError::Unavailable(e) => ReplayError::Queue(e),
            });
            break;
        }
        replayed.enqueued += 1;
    }
    audit_sent(
        connection,
        actor,
        &replayed.selected[..replayed.enqueued],
        selection,
    )
    .await?;
    sent.map(|()| replayed)
}

/// One audit row per company for the events sent: their count, and the event id when the
/// selection named one.
async fn audit_sent(
    connection: &mut Connection,
    actor: &Actor,
    sent: &[(String, String)],
    selection: &Selection,
) -> Result<(), Failure> {
    let mut per_company: BTreeMap<&str, usize> = BTreeMap::new();
    for (company, _) in sent {
        *per_company.entry(company.as_str()).or_default() += 1;
    }
    for (company, count) in per_company {
        let Ok(company) = CompanyId::parse(company) else {
            continue;
        };
        let (tx, _) = connection.tenant_tx(&company).await?;
        audit::record(
            &tx,
            &Entry {
                company: Some(&company),
                actor,
                action: "replay",
                target: selection.event_id.as_deref().unwrap_or("selection"),
                request_id: None,
                details: serde_json::json!({ "events": count }),
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
