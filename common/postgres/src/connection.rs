//! A connection that prepares each statement once: tokio-postgres otherwise prepares an
//! unnamed statement on every query (a round trip before the one that runs it).
//!
//! Statements are keyed by their SQL text, which is always a `&'static str` here: no SQL is
//! ever built from input. Column lists are explicit everywhere, so a migration that adds a
//! column never invalidates a cached statement's result type.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, Transaction};

use inlet_core::CompanyId;

use crate::plan::{all_in_order, Plan};
use crate::DbError;

type Cache = HashMap<&'static str, Statement>;

/// One database connection with its prepared statements.
pub struct Connection {
    client: Client,
    statements: Mutex<Cache>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prepared = self.statements.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Connection")
            .field("prepared_statements", &prepared)
            .finish_non_exhaustive()
    }
}

impl From<Client> for Connection {
    fn from(client: Client) -> Self {
        Self {
            client,
            statements: Mutex::new(HashMap::new()),
        }
    }
}

impl Deref for Connection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Whether the tenant context was entered for an existing company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    Known,
    Unknown,
}

impl Connection {
    /// Begins a transaction whose first statement enters the tenant itself (e.g.
    /// `record_event`). Until it does, row-level security shows and accepts nothing.
    pub async fn tx(&mut self) -> Result<Tx<'_>, DbError> {
        Ok(Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
        })
    }

    /// Begins a transaction in `company`'s context (transaction-local) and says whether that
    /// company exists: one round trip after BEGIN.
    pub async fn tenant_tx(&mut self, company: &CompanyId) -> Result<(Tx<'_>, Tenant), DbError> {
        let tx = Tx {
            tx: self.client.transaction().await?,
            statements: &self.statements,
        };
        let known: bool = tx
            .query_one("SELECT enter_company($1)", &[&company.as_str()])
            .await?
            .get(0);
        Ok((
            tx,
            if known {
                Tenant::Known
            } else {
                Tenant::Unknown
            },
        ))
    }
}

/// A transaction whose statements are prepared once per connection.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    /// Shared, not `&mut`: keeps `Tx` covariant in `'a`, like `Transaction`.
    statements: &'a Mutex<Cache>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl Tx<'_> {
    async fn prepared(&self, sql: &'static str) -> Result<Statement, DbError> {
        let cached = self
            .statements
            .lock()
            .ok()
            .and_then(|cache| cache.get(sql).cloned());
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.tx.prepare(sql).await?;
        if let Ok(mut cache) = self.statements.lock() {
            cache.insert(sql, statement.clone());
        }
        Ok(statement)
    }

    pub async fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, DbError> {
        let statement = self.prepared(sql).await?;
        Ok(self.tx.execute(&statement, params).await?)
    }

    pub async fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.prepared(sql).await?;
        Ok(self.tx.query(&statement, params).await?)
    }

    pub async fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let statement = self.prepared(sql).await?;
        Ok(self.tx.query_one(&statement, params).await?)
    }

    pub async fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let statement = self.prepared(sql).await?;
        Ok(self.tx.query_opt(&statement, params).await?)
    }

    /// Rows as they arrive, one at a time: for reads whose size has no bound (an export).
    pub async fn query_stream(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<tokio_postgres::RowStream, DbError> {
        let statement = self.prepared(sql).await?;
        Ok(self
            .tx
            .query_raw(&statement, params.iter().copied())
            .await?)
    }

    /// Runs the plan's statements in order, pipelined: one round trip for all of them, plus
    /// one the first time this connection meets a statement (the new ones are prepared
    /// together). Postgres executes them in the order sent, so the effect is that of awaiting
    /// each in turn; the first failure is returned (and has aborted the transaction).
    pub async fn run(&self, plan: &Plan<'_>) -> Result<(), DbError> {
        if plan.is_empty() {
            return Ok(());
        }
        let cached: Vec<Option<Statement>> = match self.statements.lock() {
            Ok(cache) => plan
                .statements
                .iter()
                .map(|(sql, _)| cache.get(sql).cloned())
                .collect(),
            Err(_) => plan.statements.iter().map(|_| None).collect(),
        };
        let missing: Vec<&'static str> = plan
            .statements
            .iter()
            .zip(&cached)
            .filter(|(_, cached)| cached.is_none())
            .map(|((sql, _), _)| *sql)
            .collect();
        let prepared =
            all_in_order(missing.iter().map(|sql| self.tx.prepare(sql)).collect()).await?;
        if let Ok(mut cache) = self.statements.lock() {
            for (sql, statement) in missing.iter().zip(&prepared) {
                cache.insert(sql, statement.clone());
            }
        }
        // Each statement not cached takes the next prepared one: as many as there were misses.
        let mut prepared = prepared.into_iter();
        let statements: Vec<Statement> = cached
            .into_iter()
            .filter_map(|cached| cached.or_else(|| prepared.next()))
            .collect();
        let runs = plan
            .statements
            .iter()
            .zip(&statements)
            .map(|((_, params), statement)| {
                self.tx.execute_raw(
                    statement,
                    params.iter().map(|p| &**p as &(dyn ToSql + Sync)),
                )
            })
            .collect();
        all_in_order(runs).await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}

/// Begins a transaction whose tenant context is `company`: row-level security then shows and
/// accepts only that company's rows. The context is transaction-local (`SET LOCAL`), so a
/// pooled or reused connection never carries it into the next unit of work.
pub async fn tenant_transaction<'a>(
    client: &'a mut Client,
    company: &CompanyId,
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT set_company_context($1)", &[&company.as_str()])
        .await?;
    Ok(tx)
}
