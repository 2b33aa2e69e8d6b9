//! The maintenance crons' own small state (`ops_state`, readable only by `inlet_ops`): when the
//! last digest went out, which alerts are raised.

use inlet_core::Failure;
use inlet_postgres::Connection;
use serde_json::Value;

pub async fn get(connection: &mut Connection, key: &'static str) -> Result<Option<Value>, Failure> {
    let tx = connection.tx().await?;
    let row = tx
        .query_opt("SELECT value FROM ops_state WHERE key = $1", &[&key])
        .await?;
    tx.commit().await?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn set(
    connection: &mut Connection,
    key: &'static str,
    value: &Value,
) -> Result<(), Failure> {
    let tx = connection.tx().await?;
    tx.execute(
        "INSERT INTO ops_state (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        &[&key, value],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
