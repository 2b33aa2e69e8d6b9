//! End-to-end intake latency: Inlet's real Stripe webhook handler (the code a webhook Lambda
//! runs, with its real DynamoDB and SQS clients) against the local emulator, beside a peer (the
//! intake a team would write with Powertools for AWS Lambda in Python) against the same
//! emulator in the same run; sequential and concurrent; p50 and p99 of each.
//!
//! Run: `make services && . .local/env && cargo run --release -p inlet-tools --bin bench-intake`
//! (`-- --rounds 3` alternates Inlet and the peer and prints median ratios; `--gateway URL` also
//! measures through a running `inlet local`, to separate the local stack's own overhead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use clap::Parser;
use inlet_adapters::aws::DynamoSources;
use inlet_core::clock::now_ms;
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_lambda::webhook::{self, IntakeSettings, LiveIntake};
use inlet_testing::{AwsFixture, TEST_KEYS};
use inlet_tools::samples::stripe_event;
use inlet_tools::timing::{median, Timed};
use inlet_webhooks::intake::{
    Intake, IntakeConfig, Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT,
    DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::{Provider, SigningSecret};
use lambda_http::RequestExt;

const SOURCE: &str = "bench_stripe";
const SECRET: &str = "whsec_bench_intake_0123456789abcdef";

#[derive(Parser)]
#[command(about = "End-to-end intake latency: Inlet's handler beside a Powertools peer")]
struct Args {
    /// Requests per measurement (each worker also sends one uncounted warm-up).
    #[arg(long, default_value_t = 300)]
    requests: usize,
    #[arg(long, default_value = "1,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Body size in bytes.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Measure Inlet only.
    #[arg(long)]
    no_peer: bool,
    /// Also send the same load through a running `inlet local` gateway (e.g.
    /// http://127.0.0.1:3000), signed for its demo Stripe source.
    #[arg(long)]
    gateway: Option<String>,
}

/// Latencies of one measurement, in milliseconds.
struct Sample {
    latencies: Vec<f64>,
    statuses: HashMap<u16, usize>,
}

impl Sample {
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// Bodies with fresh event ids: every request is a new event (the accept path).
fn bodies(count: usize, size: usize, tag: &str) -> Vec<Vec<u8>> {
    let run = now_ms();
    (0..count)
        .map(|i| stripe_event(size, &format!("evt_bench_{tag}_{run}_{i}")))
        .collect()
}

fn signed_request(body: Vec<u8>, secret: &str, source: &str) -> lambda_http::Request {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("/webhooks/stripe/{source}"))
        .header("content-type", "application/json");
    for (name, value) in Provider::Stripe.sign(
        &SigningSecret::new(secret),
        &body,
        now_ms().div_euclid(1000),
        "",
    ) {
        builder = builder.header(name, value);
    }
    builder
        .body(lambda_http::Body::from(body))
        .unwrap_or_default()
        .with_path_parameters(HashMap::from([("source_id".to_owned(), source.to_owned())]))
}

/// What one request did: its status, and the work left after its answer (a Lambda runtime
/// runs it after posting the response and before taking the next event; so does a worker here,
/// outside the timed span).
type Sent = (
    u16,
    Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
);

/// `concurrency` workers, each sequential over its share; each worker's first request warms
/// its connections and is not counted.
async fn measure<F, Fut>(bodies: Vec<Vec<u8>>, concurrency: usize, send: F) -> Sample
where
    F: Fn(Vec<u8>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Sent> + Send,
{
    let mut shards: Vec<Vec<Vec<u8>>> = vec![Vec::new(); concurrency];
    for (i, body) in bodies.into_iter().enumerate() {
        shards[i % concurrency].push(body);
    }
    let workers: Vec<_> = shards
        .into_iter()
        .map(|shard| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut timed = Vec::with_capacity(shard.len());
                for (i, body) in shard.into_iter().enumerate() {
                    let started = Instant::now();
                    let (status, after) = send(body).await;
                    if i > 0 {
                        timed.push((started.elapsed().as_secs_f64() * 1000.0, status));
                    }
                    if let Some(after) = after {
                        after.await;
                    }
                }
                timed
            })
        })
        .collect();
    let mut sample = Sample {
        latencies: Vec::new(),
        statuses: HashMap::new(),
    };
    for worker in workers {
        for (latency, status) in worker.await.unwrap_or_default() {
            sample.latencies.push(latency);
            *sample.statuses.entry(status).or_default() += 1;
        }
    }
    sample
}

async fn inlet_in_process(intake: Arc<LiveIntake>, bodies: Vec<Vec<u8>>, c: usize) -> Sample {
    measure(bodies, c, move |body| {
        let intake = intake.clone();
        async move {
            let request = signed_request(body, SECRET, SOURCE);
            let (answer, completion) = webhook::accept(&intake, request).await;
            let after = completion.map(|completion| {
                Box::pin(async move { intake.complete(completion).await })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            });
            (answer.status, after)
        }
    })
    .await
}

async fn inlet_through_gateway(url: String, bodies: Vec<Vec<u8>>, c: usize) -> Sample {
    let client = reqwest::Client::new();
    let secret = inlet_webhooks::intake::demo::demo_secret(Provider::Stripe);
    let source = inlet_webhooks::intake::demo::demo_source_id(Provider::Stripe);
    let endpoint = format!("{}/webhooks/stripe/{source}", url.trim_end_matches('/'));
    measure(bodies, c, move |body| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        let secret = secret.clone();
        async move {
            let mut request = client
                .post(&endpoint)
                .header("content-type", "application/json");
            for (name, value) in Provider::Stripe.sign(&secret, &body, now_ms() / 1000, "") {
                request = request.header(name, value);
            }
            let status = match request.body(body).send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 599,
            };
            (status, None)
        }
    })
    .await
}

/// The peer, in its own Python process(es), on the same emulator; only its handler is timed.
fn peer(
    python: &str,
    queue_url: &str,
    table: &str,
    bodies: &[Vec<u8>],
    c: usize,
) -> anyhow::Result<Sample> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/powertools_intake.py");
    let job = serde_json::json!({
        "table": table,
        "queue_url": queue_url,
        "secret": SECRET,
        "concurrency": c,
        "bodies": bodies.iter().map(|b| String::from_utf8_lossy(b)).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new(python)
        .arg(script)
        .env("POWERTOOLS_IDEMPOTENCY_DISABLED", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the Powertools peer (infra/scripts/tools.sh peer)")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("peer stdin")?;
        stdin.write_all(job.to_string().as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("the peer failed: {}", output.status);
    }
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let latencies = answer["latencies_ms"]
        .as_array()
        .context("peer latencies")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    let statuses = answer["statuses"]
        .as_object()
        .context("peer statuses")?
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, usize::try_from(v.as_u64()?).ok()?)))
        .collect();
    Ok(Sample {
        latencies,
        statuses,
    })
}

async fn peer_table(fixture: &AwsFixture) -> anyhow::Result<String> {
    let name = format!("inlet-bench-peer-idempotency-{}", std::process::id());
    fixture
        .dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    Ok(name)
}

/// A new, empty events queue. The emulator's SendMessage slows as its queue grows (moto 5.2:
/// about 4.4 ms more per 300 messages, and PurgeQueue may run once a minute), so every
/// measurement, Inlet's or the peer's, starts with an empty queue of its own.
async fn fresh_queue(fixture: &AwsFixture) -> anyhow::Result<String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("inlet-bench-events-{}-{n}", std::process::id());
    let created = fixture.sqs.create_queue().queue_name(name).send().await?;
    created
        .queue_url()
        .map(str::to_owned)
        .context("the emulator returned no queue URL")
}

/// One DynamoDB write and one SQS send with Inlet's clients: the emulator's floor per call.
async fn call_floor(fixture: &AwsFixture, n: usize) -> anyhow::Result<(f64, f64)> {
    let queue_url = fresh_queue(fixture).await?;
    let sdk = inlet_adapters::aws::sdk_config_for(inlet_adapters::aws::Patience::Intake).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let mut put = Vec::new();
    let mut send = Vec::new();
    for i in 0..=n {
        let started = Instant::now();
        dynamodb
            .put_item()
            .table_name(&fixture.idempotency_table)
            .item("id", AttributeValue::S(format!("floor#{i}")))
            .send()
            .await?;
        if i > 0 {
            put.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let started = Instant::now();
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body("{}")
            .send()
            .await?;
        if i > 0 {
            send.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((median(put), median(send)))
}

/// Where a sequential request's time goes: each AWS call of the pipeline, timed at its port,
/// beside the whole answer.
async fn breakdown(intake: LiveIntake, n: usize, size: usize) {
    let calls = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let timed = Intake {
        config: intake.config,
        sources: intake.sources,
        rate_limiter: intake.rate_limiter,
        dedupe: Timed::new(intake.dedupe, calls.clone()),
        queue: Timed::new(intake.queue, calls.clone()),
    };
    let mut answers = Vec::new();
    for (i, body) in bodies(n + 1, size, "breakdown").into_iter().enumerate() {
        let started = Instant::now();
        let (answer, completion) =
            webhook::accept(&timed, signed_request(body, SECRET, SOURCE)).await;
        if i > 0 {
            answers.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        assert_eq!(answer.status, 202);
        if let Some(completion) = completion {
            timed.complete(completion).await;
        }
    }
    println!("where a sequential request's time goes (medians of {n}):");
    println!(
        "  answer (202)                                         {:>6.2} ms",
        median(answers.clone())
    );
    let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
    let mut names: Vec<_> = calls.keys().copied().collect();
    names.sort();
    for name in names {
        println!("  {name:<52} {:>6.2} ms", median(calls[name][1..].to_vec()));
    }
}

fn line(who: &str, c: usize, sample: &Sample) {
    println!(
        "  {who:<22} c={c:<3} p50 {:>7.2} ms  p99 {:>7.2} ms  statuses {:?}",
        sample.percentile(50.0),
        sample.percentile(99.0),
        sample.statuses
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fixture = AwsFixture::create().await;
    let keys = KeyRing::parse(TEST_KEYS, None)?;
    DynamoSources::new(
        fixture.dynamodb.clone(),
        &fixture.sources_table,
        keys.clone(),
    )
    .put(&Source {
        source_id: SOURCE.to_owned(),
        provider: Provider::Stripe,
        tenant: TenantRule::Fixed(CompanyId::parse("co_bench")?),
        secrets: vec![SourceSecret {
            secret: SigningSecret::new(SECRET),
            not_after_ms: None,
        }],
        tolerance_secs: DEFAULT_TOLERANCE_SECS,
        rate_limit: None,
        body_limit: DEFAULT_BODY_LIMIT,
        enabled: true,
    })
    .await?;
    let settings = |queue_url: &str| IntakeSettings {
        intake: IntakeConfig {
            provider: Provider::Stripe,
            production: true,
            max_body_bytes: DEFAULT_BODY_LIMIT,
        },
        sources_table: fixture.sources_table.clone(),
        idempotency_table: fixture.idempotency_table.clone(),
        rate_limit_table: fixture.rate_limit_table.clone(),
        events_queue_url: queue_url.to_owned(),
        events_queue_max_message_bytes: 1_048_576,
        source_cache: Duration::from_secs(300),
        source_miss_cache: Duration::from_secs(5),
        dedupe_lease: Duration::from_secs(60),
        dedupe_ttl: Duration::from_secs(7 * 24 * 3600),
        keys: keys.clone(),
    };
    let python = if args.no_peer {
        None
    } else {
        let bin =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/tools.sh"))
                .arg("peer")
                .output()
                .context("installing the peer's venv")?;
        if !bin.status.success() {
            bail!("infra/scripts/tools.sh peer failed");
        }
        Some(format!(
            "{}/python",
            String::from_utf8_lossy(&bin.stdout).trim()
        ))
    };
    let table = if python.is_some() {
        Some(peer_table(&fixture).await?)
    } else {
        None
    };

    let (put, send) = call_floor(&fixture, 100).await?;
    println!(
        "emulator floor (Inlet's clients, sequential, median of 100): DynamoDB PutItem {put:.2} ms, SQS SendMessage {send:.2} ms"
    );
    breakdown(
        webhook::build(settings(&fresh_queue(&fixture).await?)).await,
        100,
        args.size,
    )
    .await;
    println!(
        "{} requests per measurement, {} B Stripe events, every one a new event",
        args.requests, args.size
    );
    let mut ratios: HashMap<usize, (Vec<f64>, Vec<f64>)> = HashMap::new();
    for round in 1..=args.rounds {
        println!("round {round}");
        for &c in &args.concurrency {
            let intake = Arc::new(webhook::build(settings(&fresh_queue(&fixture).await?)).await);
            let inlet =
                inlet_in_process(intake, bodies(args.requests + c, args.size, "inlet"), c).await;
            line("inlet (handler)", c, &inlet);
            if let Some(url) = &args.gateway {
                let through = inlet_through_gateway(
                    url.clone(),
                    bodies(args.requests + c, args.size, "gw"),
                    c,
                )
                .await;
                line("inlet (inlet local)", c, &through);
            }
            if let (Some(python), Some(table)) = (&python, &table) {
                let theirs = peer(
                    python,
                    &fresh_queue(&fixture).await?,
                    table,
                    &bodies(args.requests + c, args.size, "peer"),
                    c,
                )?;
                line("peer (Powertools)", c, &theirs);
                let entry = ratios.entry(c).or_default();
                entry
                    .0
                    .push(inlet.percentile(50.0) / theirs.percentile(50.0));
                entry
                    .1
                    .push(inlet.percentile(99.0) / theirs.percentile(99.0));
            }
        }
    }
    if !ratios.is_empty() {
        println!("median ratios Inlet / peer over {} round(s):", args.rounds);
        for &c in &args.concurrency {
            if let Some((p50, p99)) = ratios.remove(&c) {
                println!(
                    "  c={c:<3} p50 {:.2}x  p99 {:.2}x  (goal: both <= 0.5x)",
                    median(p50),
                    median(p99)
                );
            }
        }
    }
    Ok(())
}
