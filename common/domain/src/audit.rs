//! The audit log: who did what to which tenant's data, written in the same transaction as the
//! action, and the check that nobody changed it afterwards.
//!
//! The database links every row to its chain (one per company, one for system-wide actions):
//! migration 013's trigger sets the sequence number, the time and the SHA-256 of
//! `previous hash || canonical form`. [`verify`] recomputes each hash here, from the stored
//! values, so a row altered or removed behind the append-only trigger's back (a superuser with
//! the trigger disabled) is found and named.
//!
//! Details carry ids, counts and codes only: never personal data, secrets or payloads.

use std::fmt;

use futures_util::{pin_mut, TryStreamExt};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use inlet_core::CompanyId;
use inlet_postgres::{DbError, Tx};

/// Who acted: a tenant API key, an operator at the CLI, or a function of the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Key(String),
    Operator(String),
    Function(&'static str),
}

impl Actor {
    /// The operator running the CLI: `$INLET_OPERATOR`, else `$USER`, else `cli`, reduced to
    /// the characters an actor may hold.
    pub fn operator_from_env() -> Self {
        let name = std::env::var("INLET_OPERATOR")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_default();
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "_.@-".contains(*c))
            .take(128)
            .collect();
        Actor::Operator(if name.is_empty() { "cli".into() } else { name })
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Key(id) => write!(f, "key:{id}"),
            Actor::Operator(name) => write!(f, "operator:{name}"),
            Actor::Function(name) => write!(f, "function:{name}"),
        }
    }
}

/// One action to record.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// None: a system-wide action.
    pub company: Option<&'a CompanyId>,
    pub actor: &'a Actor,
    /// e.g. `key.create`, `company.delete`, `replay`, `dlq.redrive`, `retention.run`.
    pub action: &'static str,
    /// The id acted on (a key id, an event id, a queue), never personal data.
    pub target: &'a str,
    pub request_id: Option<&'a str>,
    pub details: Value,
}

/// Appends `entry` inside `tx`: it commits or rolls back with the action it records. A
/// company's row needs that company's tenant context (the application role inserts only there).
pub async fn record(tx: &Tx<'_>, entry: &Entry<'_>) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO audit_log (company_id, actor, action, target, request_id, details) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &entry.company.map(CompanyId::as_str),
            &entry.actor.to_string(),
            &entry.action,
            &entry.target,
            &entry.request_id,
            &entry.details,
        ],
    )
    .await?;
    Ok(())
}

/// Appends a system-wide row (a cron's call across tenants) inside `tx`, through the one door
/// the maintenance roles have (`record_audit`).
pub async fn record_system(
    tx: &Tx<'_>,
    actor: &Actor,
    action: &'static str,
    details: &Value,
) -> Result<(), DbError> {
    tx.execute(
        "SELECT record_audit(NULL, $1, $2, '', NULL, $3)",
        &[&actor.to_string(), &action, details],
    )
    .await?;
    Ok(())
}

/// What a row's hash covers: each field as `<chars>:<text>;`, `~;` for NULL, the time in
/// microseconds since the epoch. Must equal migration 013's `audit_canonical`.
#[allow(clippy::too_many_arguments)]
pub fn canonical(
    seq: i64,
    company: Option<&str>,
    actor: &str,
    action: &str,
    target: &str,
    at_micros: i64,
    request_id: Option<&str>,
    details_text: &str,
) -> String {
    let (seq, at) = (seq.to_string(), at_micros.to_string());
    let fields = [
        Some(seq.as_str()),
        company,
        Some(actor),
        Some(action),
        Some(target),
        Some(at.as_str()),
        request_id,
        Some(details_text),
    ];
    let mut out = String::new();
    for field in fields {
        match field {
            Some(text) => {
                out.push_str(&text.chars().count().to_string());
                out.push(':');
                out.push_str(text);
                out.push(';');
            }
            None => out.push_str("~;"),
        }
    }
    out
}

/// `SHA-256(previous || canonical)`.
pub fn link_hash(previous: &[u8], canonical: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical.as_bytes());
    hasher.finalize().into()
}

/// One stored row, as [`verify`] reads it.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub id: i64,
    pub company: Option<String>,
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub at_micros: i64,
    pub request_id: Option<String>,
    pub details_text: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The company, or `(system)`.
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {} at seq {}: {}",
            self.chain, self.seq, self.reason
        )
    }
}

/// What [`verify`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    pub chains: usize,
    pub rows: u64,
    /// The first broken link of each broken chain, in chain order.
    pub broken: Vec<Broken>,
}

const GENESIS: [u8; 32] = [0; 32];

fn chain_name(company: Option<&str>) -> String {
    company.unwrap_or("(system)").to_owned()
}

/// Walks one chain's rows in sequence order; `None` while every link holds.
#[derive(Debug)]
struct ChainWalk {
    chain: String,
    last_seq: i64,
    last_hash: Vec<u8>,
    broken: Option<Broken>,
}

impl ChainWalk {
    fn new(chain: String) -> Self {
        Self {
            chain,
            last_seq: 0,
            last_hash: GENESIS.to_vec(),
            broken: None,
        }
    }

    fn push(&mut self, row: &StoredRow) {
        if self.broken.is_some() {
            return;
        }
        let fail = |reason: String| Broken {
            chain: self.chain.clone(),
            seq: row.seq,
            reason,
        };
        let expected_seq = self.last_seq + 1;
        if row.seq != expected_seq {
            self.broken = Some(fail(format!(
                "expected seq {expected_seq} next (row id {}): rows {expected_seq}..{} were removed",
                row.id,
                row.seq - 1
            )));
            return;
        }
        if row.prev_hash != self.last_hash {
            self.broken = Some(fail(format!(
                "row id {} does not link to the row before it (its previous hash differs)",
                row.id
            )));
            return;
        }
        let recomputed = link_hash(
            &row.prev_hash,
            &canonical(
                row.seq,
                row.company.as_deref(),
                &row.actor,
                &row.action,
                &row.target,
                row.at_micros,
                row.request_id.as_deref(),
                &row.details_text,
            ),
        );
        if recomputed.as_slice() != row.hash.as_slice() {
            self.broken = Some(fail(format!(
                "row id {} was altered: its contents do not match its hash",
                row.id
            )));
            return;
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
    }

    /// Compares the end of the walk with the chain's recorded head.
    fn finish(mut self, head: Option<(i64, Vec<u8>)>) -> Option<Broken> {
        if self.broken.is_none() {
            if let Some((seq, hash)) = head {
                if seq != self.last_seq || hash != self.last_hash {
                    self.broken = Some(Broken {
                        chain: self.chain.clone(),
                        seq: self.last_seq + 1,
                        reason: format!(
                            "the chain ends at seq {} but its head records seq {seq}: the newest rows were removed",
                            self.last_seq
                        ),
                    });
                }
            }
        }
        self.broken
    }
}

/// Recomputes every chain (or `company`'s alone) from the stored rows, in constant memory, and
/// names the first broken link of each. Needs the owner's connection (it reads every tenant).
pub async fn verify(
    client: &Client,
    company: Option<&CompanyId>,
) -> Result<Verification, tokio_postgres::Error> {
    let chain_filter: Option<&str> = company.map(CompanyId::as_str);
    let heads: std::collections::BTreeMap<String, (i64, Vec<u8>)> = client
        .query(
            "SELECT chain, seq, hash FROM audit_heads WHERE $1::text IS NULL OR chain = $1",
            &[&chain_filter],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let rows = client
        .query_raw(
            "SELECT id, company_id, seq, actor, action, target,
                    (extract(epoch FROM at) * 1000000)::bigint, request_id, details::text,
                    prev_hash, hash, coalesce(company_id, '')
               FROM audit_log
              WHERE $1::text IS NULL OR coalesce(company_id, '') = $1
              ORDER BY coalesce(company_id, ''), seq",
            [chain_filter],
        )
        .await?;
    pin_mut!(rows);
    let mut report = Verification::default();
    let mut seen_chains = std::collections::BTreeSet::new();
    let mut walk: Option<(String, ChainWalk)> = None;
    while let Some(row) = rows.try_next().await? {
        let key: String = row.get(11);
        let stored = StoredRow {
            id: row.get(0),
            company: row.get(1),
            seq: row.get(2),
            actor: row.get(3),
            action: row.get(4),
            target: row.get(5),
            at_micros: row.get(6),
            request_id: row.get(7),
            details_text: row.get(8),
            prev_hash: row.get(9),
            hash: row.get(10),
        };
        report.rows += 1;
        if walk.as_ref().map(|(k, _)| k != &key).unwrap_or(true) {
            if let Some((done, chain)) = walk.take() {
                report
                    .broken
                    .extend(chain.finish(heads.get(&done).cloned()));
            }
            seen_chains.insert(key.clone());
            walk = Some((
                key.clone(),
                ChainWalk::new(chain_name(stored.company.as_deref())),
            ));
        }
        if let Some((_, chain)) = walk.as_mut() {
            chain.push(&stored);
        }
    }
    if let Some((done, chain)) = walk.take() {
        report
            .broken
            .extend(chain.finish(heads.get(&done).cloned()));
    }
    // A head without any row left: the whole chain was removed.
    for (key, (seq, _)) in &heads {
        if !seen_chains.contains(key) && *seq > 0 {
            report.broken.push(Broken {
                chain: chain_name((!key.is_empty()).then_some(key.as_str())),
                seq: 1,
                reason: format!("its head records seq {seq} but no row is left"),
            });
        }
    }
    report.chains = seen_chains.len().max(heads.len());
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &[u8], target: &str) -> StoredRow {
        let mut stored = StoredRow {
            id: seq * 10,
            company: Some("co_a".into()),
            seq,
            actor: "operator:me".into(),
            action: "key.create".into(),
            target: target.into(),
            at_micros: 1_796_154_874_602_421,
            request_id: None,
            details_text: r#"{"a": "x", "b": 1}"#.into(),
            prev_hash: prev.to_vec(),
            hash: Vec::new(),
        };
        stored.hash = link_hash(
            prev,
            &canonical(
                seq,
                stored.company.as_deref(),
                &stored.actor,
                &stored.action,
                &stored.target,
                stored.at_micros,
                None,
                &stored.details_text,
            ),
        )
        .to_vec();
        stored
    }

    fn chain(n: i64) -> Vec<StoredRow> {
        let mut rows: Vec<StoredRow> = Vec::new();
        for seq in 1..=n {
            let prev = rows
                .last()
                .map(|r| r.hash.clone())
                .unwrap_or(GENESIS.to_vec());
            rows.push(row(seq, &prev, &format!("k{seq}")));
        }
        rows
    }

    fn walk(rows: &[StoredRow], head: Option<(i64, Vec<u8>)>) -> Option<Broken> {
        let mut walk = ChainWalk::new("co_a".into());
        for r in rows {
            walk.push(r);
        }
        walk.finish(head)
    }

    #[test]
    fn the_canonical_form_prefixes_each_field_with_its_length_and_marks_null() {
        assert_eq!(
            canonical(
                2,
                Some("co_a"),
                "operator:me",
                "key.revoke",
                "k1",
                1_796_154_874_602_421,
                None,
                "{}"
            ),
            "1:2;4:co_a;11:operator:me;10:key.revoke;2:k1;16:1796154874602421;~;2:{};"
        );
        // Characters, not bytes, as Postgres' length().
        assert!(canonical(1, None, "a", "b", "é", 0, None, "{}").contains(";1:é;"));
    }

    #[test]
    fn an_intact_chain_with_its_head_verifies() {
        let rows = chain(3);
        let head = (3, rows[2].hash.clone());
        assert_eq!(walk(&rows, Some(head)), None);
    }

    #[test]
    fn an_altered_row_is_named_by_its_seq() {
        let mut rows = chain(4);
        rows[2].target = "changed".into();
        let broken = walk(&rows, None).unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("altered"), "{broken}");
    }

    #[test]
    fn a_removed_row_in_the_middle_is_named() {
        let mut rows = chain(4);
        rows.remove(1);
        let broken = walk(&rows, None).unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("rows 2..2 were removed"), "{broken}");
    }

    #[test]
    fn removed_newest_rows_are_found_from_the_head() {
        let rows = chain(4);
        let head = (4, rows[3].hash.clone());
        let broken = walk(&rows[..2], Some(head)).unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("head records seq 4"), "{broken}");
    }

    #[test]
    fn a_rehashed_row_still_breaks_the_next_link() {
        let mut rows = chain(3);
        rows[1].target = "changed".into();
        let again = row(2, &rows[0].hash, "changed");
        rows[1] = again;
        let broken = walk(&rows, None).unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("does not link"), "{broken}");
    }
}
