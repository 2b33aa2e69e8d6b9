//! Webhook sources in DynamoDB, secrets sealed with the key ring (the source id is the
//! authenticated context, so a sealed secret copied to another source does not open). Intake
//! caches them per container (`CachedSources`); this adapter only reads and writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::describe;
use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, SourceId, StoreError};
use inlet_webhooks::intake::{RateLimit, Source, SourceLookup, SourceSecret, TenantRule};
use inlet_webhooks::providers::{Provider, SigningSecret};

type Item = HashMap<String, AttributeValue>;

#[derive(Debug)]
pub struct DynamoSources {
    client: Client,
    table: String,
    keys: KeyRing,
}

impl DynamoSources {
    pub fn new(client: Client, table: impl Into<String>, keys: KeyRing) -> Self {
        Self {
            client,
            table: table.into(),
            keys,
        }
    }

    /// Reads a source from the table (a consistent read).
    pub async fn fetch(&self, source_id: &str) -> Result<Option<Source>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("source_id", AttributeValue::S(source_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(format!("source lookup failed: {}", describe(&e))))?;
        output.item().map(|item| self.decode(item)).transpose()
    }

    /// Creates or replaces a source.
    pub async fn put(&self, source: &Source) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.encode(source)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StoreError(format!(
                    "saving source {} failed: {}",
                    source.source_id,
                    describe(&e)
                ))
            })
    }

    /// Removes a source: its webhooks are 404 from the next cache miss on.
    pub async fn delete(&self, source_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("source_id", AttributeValue::S(source_id.to_owned()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                StoreError(format!(
                    "deleting source {source_id} failed: {}",
                    describe(&e)
                ))
            })
    }

    /// Every source (a scan: for the operator CLI, not for the request path).
    pub async fn list(&self) -> Result<Vec<Source>, StoreError> {
        let mut sources = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| StoreError(format!("listing sources failed: {}", describe(&e))))?;
            for item in output.items() {
                sources.push(self.decode(item)?);
            }
            match output.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        sources.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        Ok(sources)
    }

    fn encode(&self, source: &Source) -> Item {
        let n = |v: i64| AttributeValue::N(v.to_string());
        let mut item = Item::new();
        item.insert(
            "source_id".into(),
            AttributeValue::S(source.source_id.clone()),
        );
        item.insert(
            "provider".into(),
            AttributeValue::S(source.provider.as_str().into()),
        );
        match &source.tenant {
            TenantRule::Fixed(company) => item.insert(
                "tenant_company".into(),
                AttributeValue::S(company.as_str().into()),
            ),
            TenantRule::Pointer(pointer) => {
                item.insert("tenant_pointer".into(), AttributeValue::S(pointer.clone()))
            }
        };
        let secrets = source
            .secrets
            .iter()
            .map(|secret| {
                let mut map = Item::new();
                let sealed = self.keys.seal(
                    secret.secret.expose().as_bytes(),
                    &context::source_secret(&source.source_id),
                );
                map.insert("sealed".into(), AttributeValue::S(sealed));
                if let Some(not_after) = secret.not_after_ms {
                    map.insert("not_after_ms".into(), n(not_after));
                }
                AttributeValue::M(map)
            })
            .collect();
        item.insert("secrets".into(), AttributeValue::L(secrets));
        item.insert("tolerance_secs".into(), n(source.tolerance_secs));
        item.insert(
            "body_limit".into(),
            n(i64::try_from(source.body_limit).unwrap_or(i64::MAX)),
        );
        if let Some(limit) = source.rate_limit {
            item.insert("rate_requests".into(), n(i64::from(limit.requests)));
            item.insert("rate_window_secs".into(), n(i64::from(limit.window_secs)));
        }
        item.insert("enabled".into(), AttributeValue::Bool(source.enabled));
        item
    }

    fn decode(&self, item: &Item) -> Result<Source, StoreError> {
        let id = item
            .get("source_id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        let bad = |field: &str| {
            StoreError(format!(
                "source {id} is malformed ({field}); fix it with `inlet sources`"
            ))
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok());
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };

        let provider = text("provider")
            .and_then(|p| Provider::parse(p))
            .ok_or_else(|| bad("provider"))?;
        let tenant = match (text("tenant_company"), text("tenant_pointer")) {
            (Some(company), None) => {
                TenantRule::Fixed(CompanyId::parse(company).map_err(|_| bad("tenant_company"))?)
            }
            (None, Some(pointer)) => TenantRule::Pointer(pointer.clone()),
            _ => return Err(bad("tenant")),
        };
        let mut secrets = Vec::new();
        for entry in item
            .get("secrets")
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| bad("secrets"))?
        {
            let map = entry.as_m().map_err(|_| bad("secrets"))?;
            let sealed = map
                .get("sealed")
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| bad("secrets"))?;
            let opened = self
                .keys
                .open(sealed, &context::source_secret(&id))
                .map_err(|e| StoreError(format!("source {id}: a secret does not open ({e})")))?;
            let secret = String::from_utf8(opened).map_err(|_| bad("secrets"))?;
            let not_after_ms = map
                .get("not_after_ms")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok());
            secrets.push(SourceSecret {
                secret: SigningSecret::new(secret),
                not_after_ms,
            });
        }
        let rate_limit = match (number("rate_requests"), number("rate_window_secs")) {
            (Some(requests), Some(window)) => Some(RateLimit {
                requests: u32::try_from(requests).map_err(|_| bad("rate_requests"))?,
                window_secs: u32::try_from(window).map_err(|_| bad("rate_window_secs"))?,
            }),
            _ => None,
        };
        Ok(Source {
            source_id: id.clone(),
            provider,
            tenant,
            secrets,
            tolerance_secs: number("tolerance_secs").ok_or_else(|| bad("tolerance_secs"))?,
            rate_limit,
            body_limit: number("body_limit")
                .and_then(|b| usize::try_from(b).ok())
                .ok_or_else(|| bad("body_limit"))?,
            enabled: item
                .get("enabled")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        })
    }
}

impl SourceLookup for DynamoSources {
    async fn fetch(&self, source_id: &str) -> Result<Option<Source>, StoreError> {
        if !SourceId::is_valid(source_id) {
            return Ok(None);
        }
        DynamoSources::fetch(self, source_id).await
    }
}

impl inlet_domain::ports::SourceAdmin for DynamoSources {
    async fn fetch(&self, source_id: &str) -> Result<Option<Source>, StoreError> {
        DynamoSources::fetch(self, source_id).await
    }

    async fn put(&self, source: &Source) -> Result<(), StoreError> {
        DynamoSources::put(self, source).await
    }
}
