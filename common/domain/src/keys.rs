//! Tenant API keys: created (shown once), listed, revoked, each change audited in its own
//! transaction; and authentication, which finds the key's company from its id, checks the
//! secret's hash in constant time, and refuses revoked and expired keys.

use serde_json::json;

use inlet_core::api_key::{NewKey, PresentedKey, Scope};
use inlet_core::{CompanyId, Failure};
use inlet_postgres::{Connection, Tenant};

use crate::audit::{self, Actor, Entry};

/// A key as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("company {0} does not exist; create it with `inlet companies add {0} --name ...`")]
    UnknownCompany(String),
    #[error("no key {0} for this company")]
    UnknownKey(String),
    #[error("--name: at most 100 characters, no control characters")]
    BadName,
    #[error(transparent)]
    Database(#[from] Failure),
}

/// Creates a key for `company` (which must exist). The returned token is the only copy.
pub async fn create(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<&str>,
) -> Result<NewKey, KeyError> {
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KeyError::BadName);
    }
    let key = NewKey::generate();
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let (tx, tenant) = connection.tenant_tx(company).await.map_err(Failure::from)?;
    if tenant == Tenant::Unknown {
        return Err(KeyError::UnknownCompany(company.to_string()));
    }
    tx.execute(
        "INSERT INTO api_keys (key_id, company_id, name, secret_sha256, scopes, expires_at)
         VALUES ($1, get_current_company_id(), $2, $3, $4, $5::text::timestamptz)",
        &[
            &key.key_id,
            &name,
            &key.hash.as_slice(),
            &scope_names,
            &expires_at,
        ],
    )
    .await
    .map_err(Failure::from)?;
    audit::record(
        &tx,
        &Entry {
            company: Some(company),
            actor,
            action: "key.create",
            target: &key.key_id,
            request_id: None,
            details: json!({ "scopes": scope_names, "expires_at": expires_at }),
        },
    )
    .await
    .map_err(Failure::from)?;
    tx.commit().await.map_err(Failure::from)?;
    Ok(key)
}

/// Every key of `company`, newest first.
pub async fn list(
    connection: &mut Connection,
    company: &CompanyId,
) -> Result<Vec<KeyInfo>, KeyError> {
    let (tx, tenant) = connection.tenant_tx(company).await.map_err(Failure::from)?;
    if tenant == Tenant::Unknown {
        return Err(KeyError::UnknownCompany(company.to_string()));
    }
    let rows = tx
        .query(
            "SELECT key_id, name, scopes,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at,
                    to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS expires_at,
                    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS revoked_at,
                    to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_used_at
               FROM api_keys WHERE company_id = get_current_company_id()
              ORDER BY created_at DESC, key_id",
            &[],
        )
        .await
        .map_err(Failure::from)?;
    tx.commit().await.map_err(Failure::from)?;
    Ok(rows
        .iter()
        .map(|row| KeyInfo {
            key_id: row.get("key_id"),
            name: row.get("name"),
            scopes: row.get("scopes"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
            revoked_at: row.get("revoked_at"),
            last_used_at: row.get("last_used_at"),
        })
        .collect())
}

/// Revokes a key of `company` at once. `Ok(false)`: it was already revoked.
pub async fn revoke(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
    key_id: &str,
) -> Result<bool, KeyError> {
    let (tx, _) = connection.tenant_tx(company).await.map_err(Failure::from)?;
    let row = tx
        .query_opt(
            "SELECT revoked_at IS NOT NULL AS revoked FROM api_keys
              WHERE key_id = $1 AND company_id = get_current_company_id() FOR UPDATE",
            &[&key_id],
        )
        .await
        .map_err(Failure::from)?;
    let Some(row) = row else {
        return Err(KeyError::UnknownKey(key_id.to_owned()));
    };
    if row.get::<_, bool>("revoked") {
        return Ok(false);
    }
    tx.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1",
        &[&key_id],
    )
    .await
    .map_err(Failure::from)?;
    audit::record(
        &tx,
        &Entry {
            company: Some(company),
            actor,
            action: "key.revoke",
            target: key_id,
            request_id: None,
            details: json!({}),
        },
    )
    .await
    .map_err(Failure::from)?;
    tx.commit().await.map_err(Failure::from)?;
    Ok(true)
}

/// A key that authenticated: the tenant every query of the request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub company: CompanyId,
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

/// Why a key did not authenticate. Unknown id and wrong secret are one answer, so a caller
/// learns nothing about which key ids exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

/// Checks a presented key: one round trip (the lookup door), then the hash in constant time.
/// Revocation and expiry are checked only once the secret matched.
pub async fn authenticate(
    connection: &mut Connection,
    presented: &str,
) -> Result<Result<Authenticated, Refused>, Failure> {
    let Ok(key) = PresentedKey::parse(presented) else {
        return Ok(Err(Refused::Malformed));
    };
    let tx = connection.tx().await?;
    let row = tx
        .query_opt(
            "SELECT company_id, secret_sha256, scopes, expired, revoked FROM api_key_lookup($1)",
            &[&key.key_id()],
        )
        .await?;
    tx.commit().await?;
    let Some(row) = row else {
        // The same hashing work as a known id, so timing does not tell ids apart.
        let _ = key.matches(&[0u8; 32]);
        return Ok(Err(Refused::Unknown));
    };
    let hash: Vec<u8> = row.get("secret_sha256");
    if !key.matches(&hash) {
        return Ok(Err(Refused::Unknown));
    }
    if row.get::<_, bool>("revoked") {
        return Ok(Err(Refused::Revoked));
    }
    if row.get::<_, bool>("expired") {
        return Ok(Err(Refused::Expired));
    }
    let company: String = row.get("company_id");
    let Ok(company) = CompanyId::parse(&company) else {
        return Ok(Err(Refused::Unknown));
    };
    let scopes: Vec<String> = row.get("scopes");
    Ok(Ok(Authenticated {
        company,
        key_id: key.key_id().to_owned(),
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    }))
}

/// Notes the key's use, at most once a minute (a write per request would cost more than the
/// request). Runs in the key's tenant transaction.
pub async fn touch(tx: &inlet_postgres::Tx<'_>, key_id: &str) -> Result<(), Failure> {
    tx.execute(
        "UPDATE api_keys SET last_used_at = now()
          WHERE key_id = $1 AND company_id = get_current_company_id()
            AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        &[&key_id],
    )
    .await?;
    Ok(())
}
