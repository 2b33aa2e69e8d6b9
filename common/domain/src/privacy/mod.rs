//! A member's data: exported (everything Inlet holds about them, decrypted, as NDJSON, in
//! constant memory) or erased (everywhere it is held), each recorded in `privacy_requests` and
//! the audit log, in the member's company's tenant transaction.
//!
//! What names a member: their provider id (`cus_...`, `user_...`), the ids of their memberships
//! and payments, their email and name. Erasure replaces every id with a pseudonym
//! (`erased_<random>`, the same one everywhere within the request, so the tenant's aggregates
//! still join: A/B counts, amounts recovered), clears the sealed email and name, and drops the
//! sealed payload and `payload_min` of every ledger event that names them (the ledger row stays:
//! it still deduplicates the provider's retries). Dead letters that name them are the caller's
//! to delete ([`crate::ops::dead_letters::mentions`]) with the needles [`Erased`] returns.

mod export;

pub use export::{
    export, export_job, export_object_key, finish_export, request_export, write_pending_export,
    ExportJob, ExportMessage,
};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use futures_util::{pin_mut, TryStreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use inlet_core::crypto::{context, random_bytes, KeyRing};
use inlet_core::{CompanyId, Failure};
use inlet_postgres::{Connection, Tenant, Tx};

use crate::audit::{self, Actor, Entry};

/// The longest member id accepted (provider ids are far shorter).
pub const MAX_MEMBER_ID: usize = 200;

/// `SHA-256(company \0 member id)`, hex: how `privacy_requests` names the subject.
pub fn subject_hash(company: &CompanyId, member_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(company.as_str().as_bytes());
    hasher.update([0u8]);
    hasher.update(member_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// Everything that names one member in their company.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// (provider, id) of each member row with this id.
    pub members: Vec<(String, String)>,
    /// (provider, id) of their memberships.
    pub memberships: Vec<(String, String)>,
    /// (provider, id) of their payments.
    pub payments: Vec<(String, String)>,
    /// Their recovery cases.
    pub case_ids: Vec<i64>,
    /// Their email addresses and names, decrypted.
    pub personal: Vec<String>,
}

impl Footprint {
    /// Every provider id that names the member.
    pub fn ids(&self) -> BTreeSet<String> {
        self.members
            .iter()
            .chain(&self.memberships)
            .chain(&self.payments)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// What a search for this member looks for: ids, emails, names.
    pub fn needles(&self) -> Vec<String> {
        let mut needles: Vec<String> = self.ids().into_iter().collect();
        needles.extend(self.personal.iter().cloned());
        needles.retain(|n| n.len() >= 3);
        needles
    }
}

/// The member's footprint, or None when the company holds no member with this id.
pub async fn footprint(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    member_id: &str,
) -> Result<Option<Footprint>, Failure> {
    let rows = tx
        .query(
            "SELECT provider, external_id, email_enc, email_key_id, name_enc, name_key_id
               FROM members WHERE company_id = get_current_company_id() AND external_id = $1",
            &[&member_id],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut found = Footprint::default();
    for row in &rows {
        let provider: String = row.get("provider");
        let open = |enc: &str, kid: &str, context: Vec<u8>| -> Option<String> {
            let sealed: Option<Vec<u8>> = row.get(enc);
            let key_id: Option<String> = row.get(kid);
            let plain = keys.open_bytes(&key_id?, &sealed?, &context).ok()?;
            String::from_utf8(plain).ok()
        };
        found.personal.extend(open(
            "email_enc",
            "email_key_id",
            context::member_email(company.as_str(), &provider, member_id),
        ));
        found.personal.extend(open(
            "name_enc",
            "name_key_id",
            context::member_name(company.as_str(), &provider, member_id),
        ));
        found.members.push((provider, member_id.to_owned()));
    }
    for row in tx
        .query(
            "SELECT provider, external_id FROM memberships
              WHERE company_id = get_current_company_id() AND member_external_id = $1
              ORDER BY provider, external_id",
            &[&member_id],
        )
        .await?
    {
        found
            .memberships
            .push((row.get("provider"), row.get("external_id")));
    }
    let membership_ids: Vec<String> = found.memberships.iter().map(|(_, id)| id.clone()).collect();
    for row in tx
        .query(
            "SELECT provider, external_id FROM payments
              WHERE company_id = get_current_company_id()
                AND (member_external_id = $1 OR membership_external_id = ANY($2))
              ORDER BY provider, external_id",
            &[&member_id, &membership_ids],
        )
        .await?
    {
        found
            .payments
            .push((row.get("provider"), row.get("external_id")));
    }
    let payment_ids: Vec<String> = found.payments.iter().map(|(_, id)| id.clone()).collect();
    for row in tx
        .query(
            "SELECT id FROM recovery_cases
              WHERE company_id = get_current_company_id()
                AND (membership_external_id = ANY($1) OR opened_by_payment = ANY($2))
              ORDER BY id",
            &[&membership_ids, &payment_ids],
        )
        .await?
    {
        found.case_ids.push(row.get("id"));
    }
    Ok(Some(found))
}

/// A ledger event that names the member.
struct NamedEvent {
    id: i64,
    /// The line the export writes for it.
    line: Value,
}

fn contains_any(text: &[u8], needles: &[String]) -> bool {
    needles
        .iter()
        .any(|n| !n.is_empty() && text.windows(n.len()).any(|w| w == n.as_bytes()))
}

/// Streams the company's ledger, opening each sealed payload, and hands `visit` every event
/// whose object id, `payload_min` or payload names the member. Memory stays constant: one row
/// at a time.
async fn scan_events(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    needles: &[String],
    mut visit: impl FnMut(NamedEvent) -> Result<(), Failure>,
) -> Result<u64, Failure> {
    // The scan reads the company's whole ledger: a statement the functions' usual timeout (a few
    // seconds) would cancel. The caller's own time limit still applies.
    tx.execute("SET LOCAL statement_timeout = '15min'", &[])
        .await?;
    let rows = tx
        .query_stream(
            "SELECT id, source_id, provider, provider_event_id, event_type, object_type, object_id,
                    status,
                    to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS received_at,
                    payload_min, payload_enc, payload_key_id
               FROM webhook_events
              WHERE company_id = get_current_company_id()
                AND (payload_enc IS NOT NULL OR payload_min IS NOT NULL OR object_id IS NOT NULL)
              ORDER BY id",
            &[],
        )
        .await?;
    pin_mut!(rows);
    let mut scanned = 0u64;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(inlet_postgres::DbError::from)?
    {
        scanned += 1;
        let object_id: Option<String> = row.get("object_id");
        let payload_min: Option<Value> = row.get("payload_min");
        let min_text = payload_min
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let source_id: String = row.get("source_id");
        let event_id: String = row.get("provider_event_id");
        let sealed: Option<Vec<u8>> = row.get("payload_enc");
        let key_id: Option<String> = row.get("payload_key_id");
        let body = match sealed.zip(key_id) {
            Some((sealed, key_id)) => keys
                .open_bytes(
                    &key_id,
                    &sealed,
                    &context::payload(company.as_str(), &source_id, &event_id),
                )
                .ok(),
            None => None,
        };
        let named = object_id
            .as_deref()
            .is_some_and(|o| needles.iter().any(|n| n == o))
            || contains_any(min_text.as_bytes(), needles)
            || body.as_deref().is_some_and(|b| contains_any(b, needles));
        if !named {
            continue;
        }
        let payload = body.map(|b| match serde_json::from_slice::<Value>(&b) {
            Ok(json) => json,
            Err(_) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        });
        visit(NamedEvent {
            id: row.get("id"),
            line: json!({
                "type": "event",
                "id": row.get::<_, i64>("id"),
                "provider": row.get::<_, String>("provider"),
                "source_id": source_id,
                "provider_event_id": event_id,
                "event_type": row.get::<_, String>("event_type"),
                "object_type": row.get::<_, Option<String>>("object_type"),
                "object_id": object_id,
                "status": row.get::<_, String>("status"),
                "received_at": row.get::<_, String>("received_at"),
                "payload_min": payload_min,
                "payload": payload,
            }),
        })?;
    }
    Ok(scanned)
}

/// What an export wrote, by kind.
pub type Counts = BTreeMap<&'static str, u64>;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no member {0:?} in this company")]
    NotFound(String),
    #[error("the member id must be 1 to {MAX_MEMBER_ID} characters without control characters")]
    BadMemberId,
    #[error("writing the export failed: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Database(#[from] Failure),
}

impl From<inlet_postgres::DbError> for PrivacyError {
    fn from(error: inlet_postgres::DbError) -> Self {
        PrivacyError::Database(error.into())
    }
}

fn check_member_id(member_id: &str) -> Result<(), PrivacyError> {
    let ok = !member_id.is_empty()
        && member_id.chars().count() <= MAX_MEMBER_ID
        && !member_id.chars().any(char::is_control);
    ok.then_some(()).ok_or(PrivacyError::BadMemberId)
}

/// Writes the `privacy_requests` row and its audit row (target: the request's id, never the
/// member's).
/// Records a `kind` request for a member the company does not hold, and commits it; its id.
async fn record_not_found(
    tx: Tx<'_>,
    actor: &Actor,
    company: &CompanyId,
    member_id: &str,
    kind: &'static str,
) -> Result<i64, PrivacyError> {
    let request_id = record(
        &tx,
        actor,
        company,
        member_id,
        kind,
        "not_found",
        &Counts::new(),
    )
    .await?;
    tx.commit().await?;
    Ok(request_id)
}

async fn record(
    tx: &Tx<'_>,
    actor: &Actor,
    company: &CompanyId,
    member_id: &str,
    kind: &'static str,
    status: &'static str,
    counts: &Counts,
) -> Result<i64, Failure> {
    let counts = serde_json::to_value(counts).unwrap_or_else(|_| json!({}));
    let id: i64 = tx
        .query_one(
            "INSERT INTO privacy_requests (company_id, kind, subject_hash, requested_by, status, counts)
             VALUES (get_current_company_id(), $1, $2, $3, $4, $5) RETURNING id",
            &[
                &kind,
                &subject_hash(company, member_id),
                &actor.to_string(),
                &status,
                &counts,
            ],
        )
        .await?
        .get(0);
    audit::record(
        tx,
        &Entry {
            company: Some(company),
            actor,
            action: if kind == "export" {
                "privacy.export"
            } else {
                "privacy.erase"
            },
            target: &format!("privacy_request:{id}"),
            request_id: None,
            details: json!({ "status": status, "counts": counts }),
        },
    )
    .await?;
    Ok(id)
}

/// What an erasure did. `needles` are what the caller must also look for elsewhere (dead
/// letters); never log them.
#[derive(Debug, Default)]
pub struct Erased {
    pub counts: Counts,
    pub needles: Vec<String>,
    pub request_id: i64,
}

fn pseudonym() -> String {
    format!("erased_{}", hex::encode(random_bytes(8)))
}

/// Erases the member everywhere in the database, in one transaction. Idempotent: a member
/// already erased (or never known) is `Ok` with status `not_found` recorded.
pub async fn erase(
    connection: &mut Connection,
    keys: &KeyRing,
    actor: &Actor,
    company: &CompanyId,
    member_id: &str,
) -> Result<Erased, PrivacyError> {
    check_member_id(member_id)?;
    let (tx, tenant) = connection.tenant_tx(company).await?;
    if tenant == Tenant::Unknown {
        return Err(PrivacyError::NotFound(member_id.to_owned()));
    }
    let Some(found) = footprint(&tx, keys, company, member_id).await? else {
        let request_id = record_not_found(tx, actor, company, member_id, "erasure").await?;
        return Ok(Erased {
            request_id,
            ..Erased::default()
        });
    };
    let needles = found.needles();
    let mut counts = Counts::new();
    let mut count = |kind: &'static str, n: u64| *counts.entry(kind).or_default() += n;

    // Ledger events that name the member: payloads dropped, the row kept.
    let mut named = Vec::new();
    scan_events(&tx, keys, company, &needles, |event| {
        named.push(event.id);
        Ok(())
    })
    .await?;
    for chunk in named.chunks(1000) {
        let n = tx
            .execute(
                "UPDATE webhook_events SET payload_enc = NULL, payload_key_id = NULL, payload_min = NULL
                  WHERE company_id = get_current_company_id() AND id = ANY($1)",
                &[&chunk],
            )
            .await?;
        count("events", n);
    }

    // Every id replaced by one pseudonym, wherever it is held.
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for id in found.ids() {
        map.insert(id, pseudonym());
    }
    for (old, new) in &map {
        let mut n = 0;
        n += tx
            .execute(
                "UPDATE members SET external_id = $2, email_hash = NULL, email_enc = NULL,
                        email_key_id = NULL, name_enc = NULL, name_key_id = NULL, status = 'deleted'
                  WHERE company_id = get_current_company_id() AND external_id = $1",
                &[old, new],
            )
            .await?;
        for sql in [
            "UPDATE memberships SET external_id = $2 WHERE company_id = get_current_company_id() AND external_id = $1",
            "UPDATE memberships SET member_external_id = $2 WHERE company_id = get_current_company_id() AND member_external_id = $1",
            "UPDATE payments SET external_id = $2 WHERE company_id = get_current_company_id() AND external_id = $1",
            "UPDATE payments SET membership_external_id = $2 WHERE company_id = get_current_company_id() AND membership_external_id = $1",
            "UPDATE payments SET member_external_id = $2, failure_reason = NULL WHERE company_id = get_current_company_id() AND member_external_id = $1",
            "UPDATE recovery_cases SET membership_external_id = $2 WHERE company_id = get_current_company_id() AND membership_external_id = $1",
            "UPDATE recovery_cases SET opened_by_payment = $2 WHERE company_id = get_current_company_id() AND opened_by_payment = $1",
            "UPDATE recovery_cases SET closed_by_payment = $2 WHERE company_id = get_current_company_id() AND closed_by_payment = $1",
            "UPDATE object_versions SET object_id = $2 WHERE company_id = get_current_company_id() AND object_id = $1",
            "UPDATE webhook_events SET object_id = $2 WHERE company_id = get_current_company_id() AND object_id = $1",
        ] {
            n += tx.execute(sql, &[old, new]).await?;
        }
        count("ids_replaced", u64::from(n > 0));
        count("rows_changed", n);
    }
    count("members", found.members.len() as u64);
    let request_id = record(
        &tx,
        actor,
        company,
        member_id,
        "erasure",
        "completed",
        &counts,
    )
    .await?;
    tx.commit().await?;
    Ok(Erased {
        counts,
        needles,
        request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_hash_names_company_and_member_without_holding_either() {
        let a = CompanyId::parse("co_a").unwrap();
        let b = CompanyId::parse("co_b").unwrap();
        let h = subject_hash(&a, "cus_123");
        assert_eq!(h.len(), 64);
        assert!(!h.contains("cus_123"));
        assert_ne!(h, subject_hash(&b, "cus_123"));
        assert_ne!(h, subject_hash(&a, "cus_124"));
    }

    #[test]
    fn needles_are_every_id_and_personal_value_of_three_characters_or_more() {
        let found = Footprint {
            members: vec![("stripe".into(), "cus_1".into())],
            memberships: vec![("stripe".into(), "sub_1".into())],
            payments: vec![("stripe".into(), "in_1".into())],
            case_ids: vec![7],
            personal: vec!["ada@example.com".into(), "Ada".into(), "x".into()],
        };
        let needles = found.needles();
        for n in ["cus_1", "sub_1", "in_1", "ada@example.com", "Ada"] {
            assert!(needles.iter().any(|x| x == n), "{n}");
        }
        assert!(!needles.iter().any(|x| x == "x"));
        assert!(contains_any(br#"{"customer":"cus_1"}"#, &needles));
        assert!(!contains_any(br#"{"customer":"cus_2"}"#, &needles));
    }
}
