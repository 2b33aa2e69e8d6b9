//! `inlet send`: signs a payload with a source's secret in its provider's scheme and POSTs it,
//! as the provider would.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Args;
use inlet_adapters::aws::DynamoSources;
use inlet_core::crypto::{random_bytes, KeyRing};
use inlet_webhooks::providers::Provider;

/// The event id the signature carries: the payload's own `id` when it has one.
pub fn event_id(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("msg_{}", hex::encode(random_bytes(12))))
}

#[derive(Args)]
pub struct SendArgs {
    /// stripe, clerk, whop, github, shopify, slack or standard.
    provider: String,
    #[arg(long)]
    source: String,
    /// The payload, sent byte for byte.
    #[arg(long)]
    file: PathBuf,
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// An extra header, e.g. `x-github-event: push` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, env = "SOURCES_TABLE", default_value = "SourcesTable")]
    table: String,
}

/// `inlet send`: prints the gateway's answer; non-zero exit unless it is a 2xx.
pub async fn command(args: SendArgs) -> anyhow::Result<()> {
    let provider = Provider::parse(&args.provider)
        .ok_or_else(|| anyhow!("unknown provider {}", args.provider))?;
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let extra_headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .ok_or_else(|| anyhow!("--header {h:?}: expected NAME: VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let answer = run(Send {
        provider,
        source_id: args.source,
        body,
        base_url: args.url,
        table: args.table,
        extra_headers,
    })
    .await?;
    println!(
        "{} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    if !(200..300).contains(&answer.status) {
        bail!("the gateway answered {}", answer.status);
    }
    Ok(())
}

pub struct Send {
    pub provider: Provider,
    pub source_id: String,
    pub body: Vec<u8>,
    pub base_url: String,
    pub table: String,
    pub extra_headers: Vec<(String, String)>,
}

pub async fn run(send: Send) -> anyhow::Result<crate::http::Answer> {
    let keys = KeyRing::from_env()?;
    let config = inlet_adapters::aws::sdk_config().await;
    let store = DynamoSources::new(aws_sdk_dynamodb::Client::new(&config), &send.table, keys);
    let source = store
        .fetch(&send.source_id)
        .await?
        .ok_or_else(|| anyhow!("no source {} in {}", send.source_id, send.table))?;
    if source.provider != send.provider {
        bail!(
            "source {} is a {} source, not {}",
            send.source_id,
            source.provider,
            send.provider
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    let secret = source
        .active_secrets(now_ms)
        .next()
        .ok_or_else(|| anyhow!("source {} has no active secret", send.source_id))?;
    let timestamp = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let mut headers = send
        .provider
        .sign(secret, &send.body, timestamp, &event_id(&send.body));
    let content_type = if send.provider == Provider::Slack && !send.body.starts_with(b"{") {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    headers.push(("content-type".into(), content_type.into()));
    headers.extend(send.extra_headers);
    let url = format!(
        "{}/webhooks/{}/{}",
        send.base_url.trim_end_matches('/'),
        send.provider,
        send.source_id
    );
    crate::http::post(&url, &headers, Bytes::from(send.body))
        .await
        .with_context(|| format!("POST {url}"))
}
