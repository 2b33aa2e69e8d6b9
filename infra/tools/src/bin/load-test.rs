//! The load test: wrk drives a running local stack with pre-signed webhooks of every provider
//! (each provider's sample in events/, with a fresh event id), a share of them sent twice, from
//! many concurrent connections; then the ledger is checked against what intake accepted, and
//! the CPU the functions used is read from /proc.
//!
//! Run: `infra/scripts/load-test.sh` (starts its own stack with release binaries).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use inlet_core::clock::{now_ms, now_secs};
use inlet_webhooks::intake::demo;
use inlet_webhooks::providers::Provider;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

#[derive(Parser)]
#[command(about = "Load test of a running local stack: wrk, then the ledger and CPU checked")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Distinct events prepared (wrk stops sending new ones when they run out).
    #[arg(long, default_value_t = 40_000)]
    events: usize,
    /// The share of events sent a second time.
    #[arg(long, default_value_t = 0.1)]
    duplicates: f64,
    #[arg(long, default_value_t = 200)]
    connections: u32,
    #[arg(long, default_value_t = 2)]
    threads: u32,
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// The stack's resource prefix (its queue names).
    #[arg(long, default_value = "")]
    resource_prefix: String,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: String,
    /// How long to wait for the consumers to store everything accepted.
    #[arg(long, default_value_t = 600)]
    drain_secs: u64,
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A provider's sample request: its body and the headers a provider sends beside the ones
/// `sign` writes.
struct Sample {
    provider: Provider,
    body: Value,
    headers: Vec<(String, String)>,
}

fn sample(provider: Provider) -> anyhow::Result<Sample> {
    let path = repo(&format!("events/webhook-{provider}.json"));
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
        .with_context(|| format!("reading {}", path.display()))?;
    let body: Value = serde_json::from_str(event["body"].as_str().context("no body")?)?;
    let signed: BTreeSet<String> = provider
        .sign(&demo::demo_secret(provider), b"{}", 0, "x")
        .into_iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    let headers = event["headers"]
        .as_object()
        .context("no headers")?
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !signed.contains(&name)
                && !name.starts_with("x-forwarded")
                && ![
                    "host",
                    "x-amzn-trace-id",
                    "x-github-delivery",
                    "content-length",
                ]
                .contains(&name.as_str())
        })
        .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
        .collect();
    Ok(Sample {
        provider,
        body,
        headers,
    })
}

/// One request line for wrk.lua: path, headers, body (compact JSON: no tab, no newline).
fn request_line(sample: &Sample, event_id: &str) -> anyhow::Result<String> {
    let provider = sample.provider;
    let mut body = sample.body.clone();
    let mut headers = sample.headers.clone();
    match provider {
        Provider::Stripe | Provider::Whop => body["id"] = Value::from(event_id),
        Provider::Slack => body["event_id"] = Value::from(event_id),
        Provider::Github => headers.push(("x-github-delivery".into(), event_id.into())),
        _ => {}
    }
    let body = serde_json::to_string(&body)?;
    headers.extend(provider.sign(
        &demo::demo_secret(provider),
        body.as_bytes(),
        now_secs(),
        event_id,
    ));
    let headers: Vec<String> = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    Ok(format!(
        "/webhooks/{provider}/{}\t{}\t{body}",
        demo::demo_source_id(provider),
        headers.join("\u{1f}")
    ))
}

/// CPU seconds so far of the processes whose command name starts with each prefix.
fn cpu_by_process(prefixes: &[&str]) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, f64> =
        prefixes.iter().map(|p| ((*p).to_owned(), 0.0)).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(prefix) = prefixes.iter().find(|p| comm.starts_with(**p)) {
            *totals.entry((*prefix).to_owned()).or_default() +=
                (ticks(11) + ticks(12)) as f64 / 100.0;
        }
    }
    totals
}

async fn stored(client: &tokio_postgres::Client, ids: &[String]) -> anyhow::Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE provider_event_id = ANY($1)",
            &[&ids],
        )
        .await?
        .get(0))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let samples = Provider::ALL
        .into_iter()
        .map(sample)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let run = now_ms();
    let mut rng = StdRng::seed_from_u64(run as u64);
    let dir = tempfile::tempdir()?;
    let requests_path = dir.path().join("requests.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&requests_path)?);
    let mut lines = 0usize;
    let mut pending_duplicates: Vec<(usize, String)> = Vec::new();
    for n in 0..args.events {
        let sample = &samples[n % samples.len()];
        let id = format!("ld{run}x{n}");
        let line = request_line(sample, &id)?;
        if rng.random_bool(args.duplicates.clamp(0.0, 1.0)) {
            // The copy goes out a little later, as a provider's retry would.
            pending_duplicates.push((n + rng.random_range(1..200), line.clone()));
        }
        writeln!(file, "{line}")?;
        lines += 1;
        pending_duplicates.retain(|(at, copy)| {
            if *at <= n {
                let _ = writeln!(file, "{copy}");
                lines += 1;
                false
            } else {
                true
            }
        });
    }
    file.flush()?;
    drop(file);
    println!(
        "prepared {lines} signed requests: {} distinct events over {} providers, {:.0}% sent twice",
        args.events,
        samples.len(),
        args.duplicates * 100.0
    );

    let groups = [
        "webhook-",
        "process-events",
        "inlet",
        "moto_server",
        "postgres",
    ];
    let before = cpu_by_process(&groups);
    let result_path = dir.path().join("result.txt");
    let wrk = std::process::Command::new("wrk")
        .args([
            "-t",
            &args.threads.to_string(),
            "-c",
            &args.connections.to_string(),
            "-d",
            &format!("{}s", args.duration_secs),
            "--timeout",
            "30s",
            "-s",
        ])
        .arg(repo("infra/tools/load/wrk.lua"))
        .arg(&args.url)
        .arg("--")
        .arg(&requests_path)
        .env("LOAD_TEST_THREADS", args.threads.to_string())
        .env("LOAD_TEST_RESULT", &result_path)
        .status()
        .context("running wrk (infra/scripts/load-test.sh installs it)")?;
    if !wrk.success() {
        bail!("wrk failed: {wrk}");
    }
    let result = std::fs::read_to_string(&result_path)?;
    let mut accepted: Vec<String> = Vec::new();
    let mut answered_with: BTreeMap<String, String> = BTreeMap::new();
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut figures: BTreeMap<String, f64> = BTreeMap::new();
    for line in result.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("accepted"), Some(id), status) => {
                answered_with.insert(id.to_owned(), status.unwrap_or("2xx").to_owned());
            }
            (Some("status"), Some(status), Some(count)) => {
                statuses.insert(status.to_owned(), count.parse()?);
            }
            (Some(name), Some(value), None) => {
                figures.insert(name.to_owned(), value.parse()?);
            }
            _ => {}
        }
    }
    // An event answered 2xx in both of wrk's threads (its first delivery in one, the copy in
    // the other) counts once.
    accepted.extend(answered_with.keys().cloned());
    let seconds = figures.get("duration_us").copied().unwrap_or(0.0) / 1e6;
    let exhausted = figures.get("exhausted").copied().unwrap_or(0.0);
    println!(
        "answers by status: {statuses:?}; connection errors {}; requests after the prepared ones ran out: {exhausted}",
        figures.get("errors").copied().unwrap_or(0.0)
    );
    println!(
        "accepted {} distinct events in {seconds:.1} s: {:.0}/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        accepted.len(),
        accepted.len() as f64 / seconds.max(0.001),
        figures.get("latency_p50_us").copied().unwrap_or(0.0) / 1000.0,
        figures.get("latency_p95_us").copied().unwrap_or(0.0) / 1000.0,
        figures.get("latency_p99_us").copied().unwrap_or(0.0) / 1000.0,
    );

    // Everything accepted must reach the ledger once: wait until the events queue is empty
    // (nothing waiting, nothing in flight) and the ledger has stopped growing.
    let (client, connection) =
        tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let depth = async |queue: &str| -> anyhow::Result<u64> {
        let url = inlet_adapters::aws::queue_url(&sqs, &format!("{}{queue}", args.resource_prefix))
            .await?;
        Ok(sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(
                aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            )
            .send()
            .await?
            .attributes()
            .map(|a| {
                a.values()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .unwrap_or(0))
    };
    let drain_started = Instant::now();
    let mut previous = -1;
    let (count, queued) = loop {
        let count = stored(&client, &accepted).await?;
        let queued = depth("EventsQueue").await?;
        let settled = queued == 0 && count == previous;
        if settled || drain_started.elapsed() > Duration::from_secs(args.drain_secs) {
            break (count, queued);
        }
        previous = count;
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let after = cpu_by_process(&groups);
    let ours: i64 = client
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE provider_event_id LIKE $1",
            &[&format!("ld{run}x%")],
        )
        .await?
        .get(0);
    let doubled: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT provider_event_id FROM webhook_events
              WHERE provider_event_id LIKE $1 GROUP BY source_id, provider_event_id HAVING count(*) > 1) d",
            &[&format!("ld{run}x%")],
        )
        .await?
        .get(0);
    let dead = depth("EventsDLQ").await?;
    let lost = accepted.len() as i64 - count;
    println!(
        "ledger: {count} of {} accepted events stored after {:.0} s of draining ({queued} still queued); lost {lost}; doubled {doubled}; {} more stored that wrk did not see accepted (a 5xx or timeout after the event was queued: the provider retries and gets 200 duplicate); DLQ {dead}",
        accepted.len(),
        drain_started.elapsed().as_secs_f64(),
        ours - count
    );
    // Per stored event: the processing side handles exactly those; intake also answered the
    // refused and duplicate requests, which is what its figure per request shows.
    let stored_events = ours.max(1) as f64;
    let requests = figures.get("requests").copied().unwrap_or(1.0).max(1.0);
    let used = |group: &str| {
        after.get(group).copied().unwrap_or(0.0) - before.get(group).copied().unwrap_or(0.0)
    };
    let per_thousand = |group: &str| used(group) * 1000.0 / stored_events;
    println!(
        "CPU seconds per 1,000 requests answered: intake (webhook functions) {:.2}",
        used("webhook-") * 1000.0 / requests
    );
    println!(
        "CPU seconds per 1,000 stored events: intake (webhook functions) {:.2}, processing (process-events) {:.2}, Postgres {:.2}, the emulator {:.2}, inlet local {:.2}",
        per_thousand("webhook-"),
        per_thousand("process-events"),
        per_thousand("postgres"),
        per_thousand("moto_server"),
        per_thousand("inlet"),
    );
    if lost != 0 {
        let present: BTreeSet<String> = client
            .query(
                "SELECT provider_event_id FROM webhook_events WHERE provider_event_id = ANY($1)",
                &[&accepted],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for id in accepted.iter().filter(|id| !present.contains(*id)).take(10) {
            let n: usize = id
                .rsplit('x')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            println!(
                "  not stored: {id} ({}), answered {}",
                samples[n % samples.len()].provider,
                answered_with.get(id).map_or("?", String::as_str)
            );
        }
    }
    if lost != 0 || doubled != 0 || dead != 0 {
        bail!("FAIL: lost {lost}, doubled {doubled}, dead letters {dead}");
    }
    println!("load test: PASS");
    Ok(())
}
