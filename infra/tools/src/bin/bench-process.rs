//! End-to-end benchmark of event processing: N mixed Stripe envelopes through the
//! process-events handler (batch runner, ledger, projections) into the local Postgres, in
//! batches as the template's event source delivers them (50), with 1, 2 and 4 concurrent
//! consumers (one connection each); then pgbench's simple-update on the same server as the
//! floor.
//!
//! Run: `make services && . .local/env && cargo run --release -p inlet-tools --bin bench-process`
//! (`-- --rounds 5` repeats every measurement and prints median ratios). CPU per event is read
//! from /proc: the machine's busy time over the consumers' run less this process's (the
//! consumers') is Postgres's (and whatever else runs); likewise per pgbench transaction.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use clap::Parser;
use inlet_core::crypto::KeyRing;
use inlet_core::StoreError;
use inlet_domain::ports::{DeadLetter, DeadLetters, Receipt, Visibility};
use inlet_domain::projections::all as projections;
use inlet_lambda::batch::{Backoff, BatchRunner};
use inlet_lambda::metrics::Discard;
use inlet_lambda::process_events::Processor;
use inlet_postgres::{Database, DbSettings};
use inlet_testing::TEST_KEYS;
use inlet_tools::pgbench::{
    self, cpu_ticks, tps, BenchDb, COMPANIES, PROCESS_BATCH_SIZE, TICKS_PER_SEC,
};
use inlet_tools::timing::median;
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use serde_json::json;

#[derive(Parser)]
#[command(
    about = "Event processing throughput against the local Postgres, with pgbench as the floor"
)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    envelopes: usize,
    /// Records per SQS batch (default: process-events' `BatchSize` in template.yaml;
    /// `record_events` takes up to 100).
    #[arg(long, default_value_t = PROCESS_BATCH_SIZE, value_parser = clap::value_parser!(u16).range(1..=100))]
    batch_size: u16,
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    consumers: Vec<usize>,
    /// Seconds pgbench runs at each client count.
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u32,
    /// Repeat every measurement this many times, alternating consumers and pgbench, and print
    /// the median ratio per consumer count: this machine's speed drifts within minutes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    admin_url: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    app_url: String,
}

/// Nothing may fail in the benchmark: these ports count instead of redelivering.
#[derive(Default)]
struct Counting(AtomicUsize);

impl DeadLetters for Counting {
    async fn send(&self, _: &DeadLetter<'_>) -> Result<(), StoreError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Visibility for Counting {
    async fn delay(&self, _: &Receipt<'_>, _: u32) -> Result<(), StoreError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A realistic mix per customer: customer.created, subscription.updated, invoice.payment_failed
/// (opens a case with reminders), invoice.paid (recovers it), spread over companies.
fn envelopes(count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            let customer = n / 4;
            let company = format!("co_bench_{}", customer % COMPANIES);
            let at = format!("2024-03-01T{:02}:{:02}:{:02}Z", (n / 3600) % 24, (n / 60) % 60, n % 60);
            let (event_type, object) = match n % 4 {
                0 => ("customer.created", json!({"id": format!("cus_{customer}"), "object": "customer", "email": format!("u{customer}@example.com")})),
                1 => ("customer.subscription.updated", json!({"id": format!("sub_{customer}"), "object": "subscription", "customer": format!("cus_{customer}"), "status": "past_due", "current_period_end": 1_711_929_600, "items": {"data": [{"price": {"id": "price_pro"}}]}})),
                2 => ("invoice.payment_failed", json!({"id": format!("in_{customer}"), "object": "invoice", "customer": format!("cus_{customer}"), "subscription": format!("sub_{customer}"), "amount_due": 4900, "amount_paid": 0, "currency": "usd"})),
                _ => ("invoice.paid", json!({"id": format!("in_{customer}_2"), "object": "invoice", "customer": format!("cus_{customer}"), "subscription": format!("sub_{customer}"), "amount_due": 4900, "amount_paid": 4900, "currency": "usd"})),
            };
            let event_id = format!("evt_{n}");
            let body = json!({"id": event_id, "object": "event", "type": event_type, "created": 1_709_287_200 + n, "data": {"object": object}});
            Envelope {
                meta: EnvelopeMeta {
                    version: 1,
                    source_id: "src_bench".into(),
                    provider: Cow::Borrowed("stripe"),
                    company_id: company.into(),
                    event_id: event_id.into(),
                    event_type: event_type.into(),
                    object_type: object["object"].as_str().map(|t| t.to_owned().into()),
                    object_id: object["id"].as_str().map(|t| t.to_owned().into()),
                    occurred_at: Some(at.clone()),
                    received_at: at,
                    headers: BTreeMap::new(),
                    trace_id: None,
                    body_encoding: BodyEncoding::Json,
                    replay: false,
                },
                body: Cow::Owned(body.to_string().into_bytes()),
            }
            .to_json()
        })
        .map(|bytes| String::from_utf8(bytes).unwrap_or_default())
        .collect()
}

fn batches(bodies: &[String], size: usize) -> Vec<SqsEvent> {
    bodies
        .chunks(size)
        .enumerate()
        .map(|(b, chunk)| {
            let mut event = SqsEvent::default();
            for (i, body) in chunk.iter().enumerate() {
                let mut record = SqsMessage::default();
                record.message_id = Some(format!("m{b}-{i}"));
                record.body = Some(body.clone());
                record
                    .attributes
                    .insert("ApproximateReceiveCount".into(), "1".into());
                event.records.push(record);
            }
            event
        })
        .collect()
}

async fn reset(admin: &tokio_postgres::Client) -> anyhow::Result<()> {
    admin
        .batch_execute("TRUNCATE webhook_events, object_versions, reminders, recovery_cases, payments, memberships, members CASCADE")
        .await?;
    Ok(())
}

/// Each consumer is a thread with its own runtime and connection, like a container.
fn run_consumers(
    app_url: &str,
    batches: Arc<Vec<SqsEvent>>,
    consumers: usize,
) -> anyhow::Result<(Duration, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..consumers {
        let (batches, next, failures, url) = (
            batches.clone(),
            next.clone(),
            failures.clone(),
            app_url.to_owned(),
        );
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let processor = Processor {
                    runner: BatchRunner {
                        ports: Counting::default(),
                        backoff: Backoff::default(),
                    },
                    database: Database::new(DbSettings::new(url)),
                    projections: projections(),
                    keys: KeyRing::parse(TEST_KEYS, None)?,
                    // Documents are built as in production, then dropped: 1,000 lines of
                    // metrics would bury the results.
                    metrics: Arc::new(Discard),
                };
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(index) else {
                        break;
                    };
                    let response = processor.handle_batch(batch).await;
                    failures.fetch_add(response.batch_item_failures.len(), Ordering::Relaxed);
                }
                failures.fetch_add(
                    processor.runner.ports.0.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                Ok(())
            })
        }));
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a consumer thread panicked"))??;
    }
    Ok((started.elapsed(), failures.load(Ordering::Relaxed)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bench = BenchDb::create(&args.admin_url, &args.app_url).await?;
    let (admin, admin_url, app_url) = (&bench.admin, &bench.admin_url, &bench.app_url);
    let batches = Arc::new(batches(
        &envelopes(args.envelopes),
        usize::from(args.batch_size),
    ));
    println!(
        "envelopes: {} in batches of {} (stripe: customer, subscription, payment_failed, paid)",
        args.envelopes, args.batch_size
    );
    println!("| consumers | elapsed | events/s | pgbench simple-update TPS (same clients) | events/s / TPS | Postgres CPU per event | consumer CPU per event | Postgres CPU per pgbench transaction |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut ratios: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let runs = (0..args.rounds).flat_map(|_| args.consumers.iter().copied());
    for consumers in runs {
        reset(admin).await?;
        // The previous pgbench's backends have exited by now: the sum covers this run only.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (machine_before, own_before, _) = cpu_ticks();
        let (elapsed, failures) = run_consumers(app_url, batches.clone(), consumers)?;
        let (machine_after, own_after, _) = cpu_ticks();
        let per_event = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / args.envelopes as f64;
        let own = own_after.saturating_sub(own_before);
        let pg_per_event = per_event(
            machine_after
                .saturating_sub(machine_before)
                .saturating_sub(own),
        );
        let own_per_event = per_event(own);
        if failures > 0 {
            bail!("{failures} records failed with {consumers} consumers: the figure would be meaningless");
        }
        let rows: i64 = admin
            .query_one("SELECT count(*) FROM webhook_events", &[])
            .await?
            .get(0);
        if rows as usize != args.envelopes {
            bail!("expected {} ledger rows, found {rows}", args.envelopes);
        }
        let rate = args.envelopes as f64 / elapsed.as_secs_f64();
        let (machine_before, _, children_before) = cpu_ticks();
        let mut simple_update = vec!["-b".into(), "simple-update".into()];
        simple_update.extend(pgbench::timed(consumers, args.pgbench_seconds));
        let report = pgbench::run(admin_url, &simple_update)?;
        let (machine_after, _, children_after) = cpu_ticks();
        let pgbench_own = children_after.saturating_sub(children_before);
        let floor = tps(&report).context("pgbench printed no tps")?;
        let transactions: f64 = report
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|n| n.split('/').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(floor * f64::from(args.pgbench_seconds));
        let pg_per_tx = machine_after
            .saturating_sub(machine_before)
            .saturating_sub(pgbench_own) as f64
            / TICKS_PER_SEC
            * 1e6
            / transactions;
        println!(
            "| {consumers} | {:.2} s | {rate:.0} | {floor:.0} | {:.2} | {pg_per_event:.0} µs | {own_per_event:.0} µs | {pg_per_tx:.0} µs |",
            elapsed.as_secs_f64(),
            rate / floor
        );
        ratios.entry(consumers).or_default().push(rate / floor);
    }
    if args.rounds > 1 {
        for (consumers, values) in ratios {
            println!(
                "{consumers} consumers: median ratio {:.2} over {} rounds ({})",
                median(values.clone()),
                values.len(),
                pgbench::listed(&values)
            );
        }
    }
    bench.drop().await
}
