//! The ledger: each envelope in its tenant's context, exactly once in effect.
//!
//! 1. the tenant must exist (else permanent: an unknown tenant is not going to appear);
//! 2. the per-object version moves forward only: an event older than the last one applied to
//!    its object will be recorded `skipped_stale` and changes nothing else;
//! 3. the ledger row is inserted with its final status, unique per (source, event id): a
//!    conflict means a duplicate delivery, skipped; concurrent deliveries wait on the unique
//!    index (and on the object's version row) and then see the winner's row;
//! 4. the projection registered for (provider, type) is applied (an unregistered type was
//!    recorded `ignored`). Any failure rolls everything back.
//!
//! [`process_batch`] does this for a whole SQS batch in one transaction (every ledger row in
//! one call, then the projections in batch order); [`process`] for one envelope, which is also
//! how a batch that cannot go through whole is settled, record by record.
//!
//! A replay (`envelope.meta.replay`, sent by `inlet replay`) goes to its existing row instead:
//! counted there, found stale if its object has moved on, else applied again (projections are
//! idempotent: no second case, no second payment); without a row it is processed as new.
//!
//! Projections plan their statements from the event alone ([`ProjectFn`]); a batch's plans
//! run as one pipeline in batch order, so a batch's projections cost one round trip.
//! Statements are prepared once per connection.

use std::collections::HashMap;

use serde_json::Value;

use crate::payload;

use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_postgres::{params, Connection, Plan, Tx};
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

/// A projection: the statements that apply one event, decided from the event alone before any
/// of them runs (a choice that depends on a row is made in the statement's SQL, as
/// `open_case` does with the membership's status). They run in the ledger's transaction, in
/// the event's tenant context, pipelined with the rest of the batch's, in batch order. `Err`
/// is a payload the projection refuses; nothing of the batch is then committed.
pub type ProjectFn = for<'e> fn(&mut Plan<'e>, &'e Event<'e>) -> Result<(), Failure>;

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

/// An envelope made ready for the ledger: its tenant, its payload parsed (what can be stored
/// in the clear) and sealed (the exact bytes), its projection, and the status it gets if new.
struct Prepared<'e> {
    envelope: &'e Envelope<'e>,
    company: CompanyId,
    payload: Value,
    payload_min: Value,
    sealed: Vec<u8>,
    key_id: String,
    project: Option<ProjectFn>,
    fresh: Processed,
}

impl<'e> Prepared<'e> {
    fn new(
        envelope: &'e Envelope<'e>,
        projections: &Projections,
        keys: &KeyRing,
    ) -> Result<Self, Failure> {
        let meta = &envelope.meta;
        let company = CompanyId::parse(&meta.company_id)
            .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "invalid company id"))?;
        let payload = payload::storable(&envelope.body);
        let payload_min = payload::minimal(&payload);
        let context = context::payload(&meta.company_id, &meta.source_id, &meta.event_id);
        let (key_id, sealed) = keys.seal_bytes(&envelope.body, &context);
        let project = projections.get(&meta.provider, &meta.event_type);
        let fresh = if project.is_some() {
            Processed::Applied
        } else {
            Processed::Ignored
        };
        Ok(Self {
            envelope,
            company,
            payload,
            payload_min,
            sealed,
            key_id: key_id.to_owned(),
            project,
            fresh,
        })
    }

    /// What the ledger's answer means for this envelope.
    fn outcome(&self, recorded: &str) -> Result<Processed, Failure> {
        match recorded {
            "unknown_tenant" => Err(Failure::permanent(
                DeadLetterCode::UnknownTenant,
                format!("unknown tenant {}", self.company),
            )),
            "other_tenant" => Err(Failure::permanent(
                DeadLetterCode::TenantConflict,
                "this event id is recorded for another tenant",
            )),
            "duplicate" => Ok(Processed::Duplicate),
            "skipped_stale" => Ok(Processed::Stale),
            "completed" | "ignored" => Ok(self.fresh),
            other => Err(Failure::permanent(
                DeadLetterCode::DatabaseRejected,
                format!("the ledger answered {other:?}; the migrations and this binary disagree"),
            )),
        }
    }

    /// The event and its projection, if the ledger says the event is new and it has one.
    fn applied<'k>(
        self,
        outcome: Processed,
        keys: &'k KeyRing,
    ) -> Option<(CompanyId, ProjectFn, Event<'k>)>
    where
        'e: 'k,
    {
        match (outcome, self.project) {
            (Processed::Applied, Some(project)) => Some((
                self.company,
                project,
                Event {
                    envelope: self.envelope,
                    keys,
                    payload: self.payload,
                },
            )),
            _ => None,
        }
    }
}

/// Processes one envelope. `Err` carries the class the batch runner acts on.
pub async fn process(
    connection: &mut Connection,
    envelope: &Envelope<'_>,
    projections: &Projections,
    keys: &KeyRing,
) -> Result<Processed, Failure> {
    let prepared = Prepared::new(envelope, projections, keys)?;
    let meta = &envelope.meta;
    let tx = connection.tx().await?;
    // A replay re-applies the event to its ledger row; without a row it is processed as new.
    let replayed: Option<String> = if meta.replay {
        Some(
            tx.query_one(
                "SELECT replay_event($1, $2, $3, $4, $5, $6, $7::text::timestamptz, $8)",
                &[
                    &prepared.company.as_str(),
                    &meta.source_id,
                    &&*meta.provider,
                    &meta.event_id,
                    &meta.object_type,
                    &meta.object_id,
                    &meta.occurred_at,
                    &prepared.fresh.status(),
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
                    &prepared.company.as_str(),
                    &meta.source_id,
                    &&*meta.provider,
                    &meta.event_id,
                    &meta.event_type,
                    &meta.object_type,
                    &meta.object_id,
                    &meta.occurred_at,
                    &meta.received_at,
                    &prepared.fresh.status(),
                    &prepared.payload_min,
                    &prepared.sealed,
                    &prepared.key_id,
                ],
            )
            .await?
            .get(0),
    };
    let outcome = prepared.outcome(&recorded)?;
    if let Some((_, project, event)) = prepared.applied(outcome, keys) {
        let mut plan = Plan::default();
        project(&mut plan, &event)?;
        tx.run(&plan).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Why a batch did not go through in one transaction. The caller then processes each envelope
/// alone with [`process`], which gives every envelope exactly the outcome it would have had
/// (one bad envelope fails alone); nothing of the batch was committed.
#[derive(Debug)]
pub enum BatchFallback {
    /// A replay (they are rare and take their own path) or an envelope that cannot be prepared.
    NotEligible,
    /// An envelope the ledger or its projection refused, or a database error: the transaction
    /// was rolled back.
    Failed(Failure),
}

/// Processes a batch of envelopes in one transaction: every ledger row in one call (each in
/// its tenant's context, in batch order, with the per-object order and duplicate checks of
/// [`process`]), then each new event's projection in batch order, in its tenant's context. The
/// outcomes are those the envelopes would have had one by one. The transaction is returned
/// open: the caller may add to it, and commits it.
pub async fn process_batch<'c>(
    connection: &'c mut Connection,
    envelopes: &[Envelope<'_>],
    projections: &Projections,
    keys: &KeyRing,
) -> Result<(Tx<'c>, Vec<Processed>), BatchFallback> {
    if envelopes.is_empty() || envelopes.len() > 100 || envelopes.iter().any(|e| e.meta.replay) {
        return Err(BatchFallback::NotEligible);
    }
    let prepared = envelopes
        .iter()
        .map(|envelope| Prepared::new(envelope, projections, keys))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| BatchFallback::NotEligible)?;
    let column = |f: &dyn Fn(&Prepared) -> Option<String>| -> Vec<Option<String>> {
        prepared.iter().map(f).collect()
    };
    let companies = column(&|p| Some(p.company.as_str().to_owned()));
    let sources = column(&|p| Some(p.envelope.meta.source_id.to_string()));
    let providers = column(&|p| Some(p.envelope.meta.provider.to_string()));
    let event_ids = column(&|p| Some(p.envelope.meta.event_id.to_string()));
    let event_types = column(&|p| Some(p.envelope.meta.event_type.to_string()));
    let object_types = column(&|p| p.envelope.meta.object_type.as_deref().map(str::to_owned));
    let object_ids = column(&|p| p.envelope.meta.object_id.as_deref().map(str::to_owned));
    let occurred = column(&|p| p.envelope.meta.occurred_at.clone());
    let received = column(&|p| Some(p.envelope.meta.received_at.clone()));
    let fresh = column(&|p| Some(p.fresh.status().to_owned()));
    let minimal: Vec<&Value> = prepared.iter().map(|p| &p.payload_min).collect();
    let sealed: Vec<&[u8]> = prepared.iter().map(|p| p.sealed.as_slice()).collect();
    let key_ids = column(&|p| Some(p.key_id.clone()));

    let failed = BatchFallback::Failed;
    let tx = connection.tx().await.map_err(|e| failed(e.into()))?;
    let recorded: Vec<String> = tx
        .query_one(
            "SELECT record_events($1, $2, $3, $4, $5, $6, $7, $8::text[]::timestamptz[],
             $9::text[]::timestamptz[], $10, $11, $12, $13)",
            &[
                &companies,
                &sources,
                &providers,
                &event_ids,
                &event_types,
                &object_types,
                &object_ids,
                &occurred,
                &received,
                &fresh,
                &minimal,
                &sealed,
                &key_ids,
            ],
        )
        .await
        .map_err(|e| failed(e.into()))?
        .get(0);
    if recorded.len() != prepared.len() {
        return Err(failed(Failure::permanent(
            DeadLetterCode::DatabaseRejected,
            "record_events answered for a different number of events",
        )));
    }
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut applied = Vec::new();
    for (prepared, recorded) in prepared.into_iter().zip(&recorded) {
        let outcome = prepared.outcome(recorded).map_err(failed)?;
        outcomes.push(outcome);
        applied.extend(prepared.applied(outcome, keys));
    }
    // Every projection's statements in batch order, each run of events of one tenant after
    // entering it (the statements write `get_current_company_id()`); then all of them sent at
    // once.
    let mut plan = Plan::default();
    let mut context: Option<&str> = None;
    for (company, project, event) in &applied {
        if context != Some(company.as_str()) {
            plan.push("SELECT set_company_context($1)", params![company.as_str()]);
            context = Some(company.as_str());
        }
        project(&mut plan, event).map_err(failed)?;
    }
    tx.run(&plan).await.map_err(|e| failed(e.into()))?;
    Ok((tx, outcomes))
}
