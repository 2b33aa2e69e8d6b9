//! One envelope, one Postgres transaction, in its tenant's context:
//!
//! 1. the tenant must exist (else permanent: an unknown tenant is not going to appear);
//! 2. the per-object version moves forward only: an event older than the last one applied to
//!    its object will be recorded `skipped_stale` and changes nothing else;
//! 3. the ledger row is inserted with its final status, unique per (source, event id): a
//!    conflict means a duplicate delivery, skipped; concurrent deliveries wait on the unique
//!    index (and on the object's version row) and then see the winner's row;
//! 4. the projection registered for (provider, type) is applied (an unregistered type was
//!    recorded `ignored`), and the transaction commits. Any failure rolls everything back.
//!
//! A replay (`envelope.meta.replay`, sent by `inlet replay`) goes to its existing row instead:
//! counted there, found stale if its object has moved on, else applied again (projections are
//! idempotent: no second case, no second payment); without a row it is processed as new.
//!
//! Statements are prepared once per connection: an event costs BEGIN, one round trip per
//! statement, and COMMIT.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::payload;

use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_postgres::{Connection, Tx};
use inlet_webhooks::envelope::Envelope;
use inlet_webhooks::providers::Provider;

/// How an envelope ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    Applied,
    Duplicate,
    Stale,
    /// No projection for its (provider, type): recorded in the ledger only.
    Ignored,
}

impl Processed {
    pub fn status(self) -> &'static str {
        match self {
            Processed::Applied => "completed",
            Processed::Duplicate => "duplicate",
            Processed::Stale => "skipped_stale",
            Processed::Ignored => "ignored",
        }
    }
}

/// What a projection sees: the envelope and its body parsed once.
pub struct Event<'a> {
    pub envelope: &'a Envelope<'a>,
    /// For sealing personal data a projection keeps (a member's email).
    pub keys: &'a KeyRing,
    /// The body as JSON (`Null` when it is not JSON, e.g. a Slack form).
    pub payload: Value,
}

impl Event<'_> {
    /// When the event happened (RFC 3339), or when it was received if the provider does not say.
    pub fn occurred_at(&self) -> &str {
        let meta = &self.envelope.meta;
        meta.occurred_at.as_deref().unwrap_or(&meta.received_at)
    }
}

pub type ProjectionFuture<'t> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 't>>;

/// A projection: applies one event inside the ledger's transaction.
pub type ProjectFn = for<'t> fn(&'t Tx<'t>, &'t Event<'t>) -> ProjectionFuture<'t>;

/// Projections per (provider, event type): adding one is a function and a line. Every
/// registered type has a fixture event that the suite applies (`projection_fixtures`), so a
/// misspelt type fails a test instead of recording events `ignored`.
#[derive(Default, Clone)]
pub struct Projections {
    map: HashMap<(Provider, &'static str), ProjectFn>,
}

impl Projections {
    pub fn register(
        mut self,
        provider: Provider,
        event_type: &'static str,
        project: ProjectFn,
    ) -> Self {
        self.map.insert((provider, event_type), project);
        self
    }

    fn get(&self, provider: &str, event_type: &str) -> Option<ProjectFn> {
        let provider = Provider::parse(provider)?;
        self.map.get(&(provider, event_type)).copied()
    }

    /// Every registered (provider, event type), sorted.
    pub fn registered(&self) -> Vec<(Provider, &'static str)> {
        let mut all: Vec<_> = self.map.keys().copied().collect();
        all.sort_by_key(|(provider, kind)| (provider.as_str(), *kind));
        all
    }
}

/// Processes one envelope. `Err` carries the class the batch runner acts on.
pub async fn process(
    connection: &mut Connection,
    envelope: &Envelope<'_>,
    projections: &Projections,
    keys: &KeyRing,
) -> Result<Processed, Failure> {
    let meta = &envelope.meta;
    let company = CompanyId::parse(&meta.company_id)
        .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "invalid company id"))?;
    let payload = payload::storable(&envelope.body);
    let context = context::payload(&meta.company_id, &meta.source_id, &meta.event_id);
    let (key_id, sealed) = keys.seal_bytes(&envelope.body, &context);
    let project = projections.get(&meta.provider, &meta.event_type);

    let fresh = if project.is_some() {
        Processed::Applied
    } else {
        Processed::Ignored
    };

    let tx = connection.tx().await?;
    // A replay re-applies the event to its ledger row; without a row it is processed as new.
    let replayed: Option<String> = if meta.replay {
        Some(
            tx.query_one(
                "SELECT replay_event($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)",
                &[
                    &company.as_str(),
                    &meta.source_id,
                    &&*meta.provider,
                    &meta.event_id,
                    &meta.object_type,
                    &meta.object_id,
                    &meta.occurred_at,
                    &fresh.status(),
                ],
            )
            .await?
            .get(0),
        )
    } else {
        None
    };
    let recorded: String = match replayed {
        Some(replayed) if replayed != "missing" => replayed,
        _ => tx
            .query_one(
                "SELECT record_event($1, $2, $3, $4, $5, $6, $7, $8::text::timestamptz,
                 $9::text::timestamptz, $10, $11, $12, $13)",
                &[
                    &company.as_str(),
                    &meta.source_id,
                    &&*meta.provider,
                    &meta.event_id,
                    &meta.event_type,
                    &meta.object_type,
                    &meta.object_id,
                    &meta.occurred_at,
                    &meta.received_at,
                    &fresh.status(),
                    &payload::minimal(&payload),
                    &sealed,
                    &key_id,
                ],
            )
            .await?
            .get(0),
    };
    let outcome = match recorded.as_str() {
        "unknown_tenant" => {
            return Err(Failure::permanent(
                DeadLetterCode::UnknownTenant,
                format!("unknown tenant {company}"),
            ))
        }
        "other_tenant" => {
            return Err(Failure::permanent(
                DeadLetterCode::TenantConflict,
                "this event id is recorded for another tenant",
            ))
        }
        "duplicate" => Processed::Duplicate,
        "skipped_stale" => Processed::Stale,
        "completed" | "ignored" => fresh,
        other => {
            return Err(Failure::permanent(
                DeadLetterCode::DatabaseRejected,
                format!("the ledger answered {other:?}; the migrations and this binary disagree"),
            ))
        }
    };
    if let (Processed::Applied, Some(project)) = (outcome, project) {
        project(
            &tx,
            &Event {
                envelope,
                keys,
                payload,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}
