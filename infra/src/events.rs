//! `inlet events refresh`: re-signs the webhook samples in events/ with the current time and
//! the demo sources' secrets, so `sam local invoke -e` and `inlet local invoke` verify them.
//! The timestamp check is never disabled to make a sample pass.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use clap::Subcommand;
use inlet_webhooks::intake::demo;
use inlet_webhooks::providers::Provider;
use serde_json::Value;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Re-sign the webhook samples with the current time and the demo sources' secrets.
    Refresh {
        #[arg(long, default_value = "events")]
        dir: PathBuf,
    },
}

pub fn command(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Refresh { dir } => {
            for name in refresh(&dir, inlet_core::clock::now_secs())? {
                println!("re-signed {}", dir.join(name).display());
            }
            Ok(())
        }
    }
}

/// Re-signs every `webhook-<provider>*.json` in `dir` at `now` (Unix seconds). Returns the files.
pub fn refresh(dir: &Path, now: i64) -> anyhow::Result<Vec<String>> {
    let mut refreshed = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(rest) = name
            .strip_prefix("webhook-")
            .and_then(|r| r.strip_suffix(".json"))
        else {
            continue;
        };
        let provider_name = rest.split(['-', '.']).next().unwrap_or_default();
        let provider = Provider::parse(provider_name)
            .ok_or_else(|| anyhow!("{name}: no provider {provider_name}"))?;
        let text = std::fs::read_to_string(&path)?;
        let mut event: Value =
            serde_json::from_str(&text).with_context(|| format!("{name} is not JSON"))?;
        resign(&mut event, provider, now).with_context(|| format!("re-signing {name}"))?;
        std::fs::write(&path, serde_json::to_string_pretty(&event)? + "\n")?;
        refreshed.push(name);
    }
    Ok(refreshed)
}

/// Re-signs one API Gateway v2 event in place.
pub fn resign(event: &mut Value, provider: Provider, now: i64) -> anyhow::Result<()> {
    let body_text = event
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = if event.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        B64.decode(&body_text).context("body is not base64")?
    } else {
        body_text.into_bytes()
    };
    let source_id = event
        .pointer("/pathParameters/source_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if source_id != demo::demo_source_id(provider) {
        bail!(
            "pathParameters.source_id must be the demo source {}",
            demo::demo_source_id(provider)
        );
    }
    let headers = event
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("the event has no headers object"))?;
    let event_id = [
        "webhook-id",
        "svix-id",
        "x-github-delivery",
        "x-shopify-webhook-id",
    ]
    .iter()
    .find_map(|h| headers.get(*h).and_then(Value::as_str))
    .unwrap_or("msg_demo_0001")
    .to_owned();
    // The provider's signature headers, freshly computed, replace the old ones.
    for (name, value) in provider.sign(&demo::demo_secret(provider), &body, now, &event_id) {
        headers.insert(name, Value::String(value));
    }
    if let Some(context) = event
        .get_mut("requestContext")
        .and_then(Value::as_object_mut)
    {
        context.insert("timeEpoch".into(), Value::from(now * 1000));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use inlet_webhooks::providers::VerifyOptions;

    use super::*;

    fn headers_of(event: &Value) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in event["headers"].as_object().unwrap() {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
            );
        }
        map
    }

    #[test]
    fn every_sample_in_events_verifies_against_its_demo_source_after_a_refresh() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let tmp = tempfile::tempdir().unwrap();
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let now = 1_800_000_000;
        let files = refresh(tmp.path(), now).unwrap();
        for name in &files {
            let event: Value =
                serde_json::from_str(&std::fs::read_to_string(tmp.path().join(name)).unwrap())
                    .unwrap();
            let provider = Provider::parse(
                name.trim_start_matches("webhook-")
                    .split(['-', '.'])
                    .next()
                    .unwrap(),
            )
            .unwrap();
            let body = event["body"].as_str().unwrap().as_bytes();
            let options = VerifyOptions {
                now,
                tolerance_secs: 300,
            };
            let secret = demo::demo_secret(provider);
            assert_eq!(
                provider.verify(&headers_of(&event), body, &[&secret], options),
                Ok(()),
                "{name}"
            );
            assert!(
                provider.identify(&headers_of(&event), body).is_ok()
                    || provider.handshake(body).is_some(),
                "{name}"
            );
            // And stale ten minutes later: the check is never disabled.
            let later = VerifyOptions {
                now: now + 600,
                tolerance_secs: 300,
            };
            if !matches!(provider, Provider::Github | Provider::Shopify) {
                assert!(
                    provider
                        .verify(&headers_of(&event), body, &[&secret], later)
                        .is_err(),
                    "{name}"
                );
            }
            count += 1;
        }
        assert_eq!(
            count,
            Provider::ALL.len(),
            "one sample per webhook function: {files:?}"
        );
    }
}
