//! What the tenant API reads: the ledger, sources, recovery cases and the A/B report, always in
//! the caller's tenant transaction (row-level security decides what exists), newest first,
//! with sealed cursors.
//!
//! Every filter is a bound parameter; nothing from a request is ever part of SQL text.

pub mod cursor;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, Failure};
use inlet_postgres::Tx;

pub use cursor::{Cursor, CursorError};
pub use reports::*;

/// Timestamps as RFC 3339 in UTC with microseconds.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

// After the macro: the reports use it.
mod reports;

/// The most rows one page holds.
pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 50;

/// The ledger statuses an event can have.
pub const EVENT_STATUSES: [&str; 5] = [
    "received",
    "completed",
    "skipped_stale",
    "ignored",
    "failed",
];

/// Filters of `GET /v1/events`, already checked (see the API layer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub status: Option<String>,
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub object_id: Option<String>,
    /// The provider's own event id (`evt_...`).
    pub provider_event_id: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
}

/// A ledger row as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// The ledger's id for this event (what `/v1/events/{id}` takes).
    pub id: i64,
    pub provider: String,
    pub source_id: String,
    /// The provider's own event id.
    pub provider_event_id: String,
    pub event_type: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// received, completed, skipped_stale, ignored or failed.
    pub status: String,
    pub occurred_at: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
    pub replay_count: i32,
    /// The allow-listed fields of the payload (ids, amounts, status); no personal data.
    #[schema(value_type = Option<Object>)]
    pub payload_min: Option<Value>,
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<Event>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

fn event(row: &tokio_postgres::Row) -> Event {
    Event {
        id: row.get("id"),
        provider: row.get("provider"),
        source_id: row.get("source_id"),
        provider_event_id: row.get("provider_event_id"),
        event_type: row.get("event_type"),
        object_type: row.get("object_type"),
        object_id: row.get("object_id"),
        status: row.get("status"),
        occurred_at: row.get("occurred_at"),
        received_at: row.get("received_at"),
        processed_at: row.get("processed_at"),
        replay_count: row.get("replay_count"),
        payload_min: row.get("payload_min"),
    }
}

/// A page from `limit + 1` rows (newest first): at most `limit` rows, and the sealed cursor of the
/// last one (its `at_column` microseconds and `id`) when more follow.
fn paginate<'r>(
    rows: &'r [tokio_postgres::Row],
    limit: i64,
    at_column: &str,
    keys: &KeyRing,
    company: &CompanyId,
    list: &str,
) -> (Vec<&'r tokio_postgres::Row>, Option<String>) {
    let page: Vec<_> = rows.iter().take(limit as usize).collect();
    let next_cursor = (rows.len() as i64 > limit)
        .then(|| page.last())
        .flatten()
        .map(|row| {
            Cursor {
                at_micros: row.get(at_column),
                id: row.get("id"),
            }
            .seal(keys, company, list)
        });
    (page, next_cursor)
}

/// A page of the tenant's events matching `filter`, after `cursor`.
pub async fn list_events(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    filter: &EventFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<EventPage, Failure> {
    const SQL: &str = concat!(
        "SELECT id, provider, source_id, provider_event_id, event_type, object_type, object_id, status, ",
        rfc3339!("occurred_at"), " AS occurred_at, ",
        rfc3339!("received_at"), " AS received_at, ",
        rfc3339!("processed_at"), " AS processed_at, replay_count, payload_min,
                (extract(epoch FROM received_at) * 1000000)::bigint AS received_us
           FROM webhook_events
          WHERE company_id = get_current_company_id()
            AND ($1::text IS NULL OR status = $1)
            AND ($2::text IS NULL OR provider = $2)
            AND ($3::text IS NULL OR event_type = $3)
            AND ($4::text IS NULL OR object_id = $4)
            AND ($5::text IS NULL OR received_at >= $5::text::timestamptz)
            AND ($6::text IS NULL OR received_at < $6::text::timestamptz)
            AND ($7::bigint IS NULL
                 OR (received_at, id) < ('epoch'::timestamptz + $7 * interval '1 microsecond', $8))
            AND ($10::text IS NULL OR provider_event_id = $10)
          ORDER BY webhook_events.received_at DESC, id DESC
          LIMIT $9"
    );
    let limit = limit.clamp(1, MAX_PAGE);
    let rows = tx
        .query(
            SQL,
            &[
                &filter.status,
                &filter.provider,
                &filter.event_type,
                &filter.object_id,
                &filter.since,
                &filter.until,
                &after.map(|c| c.at_micros),
                &after.map(|c| c.id).unwrap_or(0),
                &(limit + 1),
                &filter.provider_event_id,
            ],
        )
        .await?;
    let (page, next_cursor) = paginate(&rows, limit, "received_us", keys, company, "events");
    Ok(EventPage {
        data: page.into_iter().map(event).collect(),
        next_cursor,
    })
}

/// One event with, when asked for and allowed, its decrypted payload.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: Event,
    /// The payload as received, when it is JSON (only with `include=payload` and the
    /// `payloads:read` scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// The payload as received, base64, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Why no payload is shown although it was asked for (`dropped_by_retention`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_unavailable: Option<String>,
}

/// The tenant's event `id`, or None (also when it is another tenant's).
pub async fn get_event(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    id: i64,
    with_payload: bool,
) -> Result<Option<EventDetail>, Failure> {
    const SQL: &str = concat!(
        "SELECT id, provider, source_id, provider_event_id, event_type, object_type, object_id, status, ",
        rfc3339!("occurred_at"), " AS occurred_at, ",
        rfc3339!("received_at"), " AS received_at, ",
        rfc3339!("processed_at"), " AS processed_at, replay_count, payload_min, payload_enc, payload_key_id
           FROM webhook_events
          WHERE company_id = get_current_company_id() AND id = $1"
    );
    let Some(row) = tx.query_opt(SQL, &[&id]).await? else {
        return Ok(None);
    };
    let event = event(&row);
    let mut detail = EventDetail {
        payload: None,
        payload_base64: None,
        payload_unavailable: None,
        event,
    };
    if with_payload {
        let sealed: Option<Vec<u8>> = row.get("payload_enc");
        let key_id: Option<String> = row.get("payload_key_id");
        match sealed.zip(key_id) {
            None => detail.payload_unavailable = Some("dropped_by_retention".into()),
            Some((sealed, key_id)) => {
                let opened = keys.open_bytes(
                    &key_id,
                    &sealed,
                    &context::payload(
                        company.as_str(),
                        &detail.event.source_id,
                        &detail.event.provider_event_id,
                    ),
                );
                match opened {
                    Ok(body) => match serde_json::from_slice::<Value>(&body) {
                        Ok(json) => detail.payload = Some(json),
                        Err(_) => {
                            use base64::Engine;
                            detail.payload_base64 =
                                Some(base64::engine::general_purpose::STANDARD.encode(&body));
                        }
                    },
                    Err(error) => {
                        tracing::error!(event_id = id, %error, "a stored payload does not open");
                        detail.payload_unavailable = Some("key_unavailable".into());
                    }
                }
            }
        }
    }
    Ok(Some(detail))
}

/// A source that delivered this tenant's events.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Source {
    pub source_id: String,
    pub provider: String,
    /// Events received from it for this tenant.
    pub events: i64,
    pub first_received_at: String,
    pub last_received_at: String,
    /// When the watchdog last alerted that it went silent, if it did.
    pub silent_alerted_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SourceList {
    pub data: Vec<Source>,
}

/// The sources that delivered the tenant's events, the most recently active first.
pub async fn list_sources(tx: &Tx<'_>) -> Result<SourceList, Failure> {
    const SQL: &str = concat!(
        "SELECT source_id, provider, events, ",
        rfc3339!("first_received_at"),
        " AS first_received_at, ",
        rfc3339!("last_received_at"),
        " AS last_received_at, ",
        rfc3339!("silent_alerted_at"),
        " AS silent_alerted_at
           FROM source_activity WHERE company_id = get_current_company_id()
          ORDER BY source_activity.last_received_at DESC, source_id
          LIMIT 1000"
    );
    let rows = tx.query(SQL, &[]).await?;
    Ok(SourceList {
        data: rows
            .iter()
            .map(|row| Source {
                source_id: row.get("source_id"),
                provider: row.get("provider"),
                events: row.get("events"),
                first_received_at: row.get("first_received_at"),
                last_received_at: row.get("last_received_at"),
                silent_alerted_at: row.get("silent_alerted_at"),
            })
            .collect(),
    })
}
