//! The fault-injection suite (`make chaos`): the local stack under a replay storm, with
//! function processes killed and Postgres restarted during it, and poison messages beside it.
//! It proves what the design promises: an accepted event is never lost, none is applied twice,
//! and the dead-letter queue holds the poison, each with its code, and nothing else.

pub mod faults;
pub mod send;
pub mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use aws_sdk_sqs::types::QueueAttributeName;

use inlet_adapters::aws::DynamoSources;
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_testing::ScratchPostgres;
use inlet_webhooks::intake::{Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT};
use inlet_webhooks::providers::{Provider, SigningSecret};

use send::{Kind, Tally, Target};

/// A run's shape.
#[derive(Debug, Clone)]
pub struct Options {
    pub events: usize,
    pub max_deliveries: u32,
    pub senders: usize,
    pub kills: u32,
    pub postgres_restarts: u32,
    pub seed: u64,
    pub template: PathBuf,
    /// Where the function binaries and `inlet` are (`target/debug`).
    pub bin_dir: PathBuf,
    /// How long senders keep retrying one delivery, and the stack gets to drain.
    pub patience: Duration,
}

/// What a run found. `lost`, `doubled`, `unaccepted` and `unexpected_dead_letters` must be 0.
#[derive(Debug, Default)]
pub struct Report {
    pub events: usize,
    pub deliveries: usize,
    pub attempts: usize,
    pub accepted: usize,
    pub unaccepted: usize,
    pub stored: usize,
    pub lost: usize,
    pub doubled: usize,
    pub answers: BTreeMap<String, u64>,
    pub faults: Vec<String>,
    pub dead_letters: BTreeMap<String, usize>,
    pub unexpected_dead_letters: usize,
    pub missing_dead_letters: Vec<&'static str>,
    pub seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.unaccepted == 0
            && self.unexpected_dead_letters == 0
            && self.missing_dead_letters.is_empty()
    }

    pub fn print(&self) {
        println!(
            "chaos: {} distinct events, {} deliveries ({} attempts) in {:.1} s",
            self.events, self.deliveries, self.attempts, self.seconds
        );
        for fault in &self.faults {
            println!("  fault      {fault}");
        }
        for (answer, n) in &self.answers {
            println!("  answered   {answer:<40} {n}");
        }
        println!(
            "  accepted   {} distinct events (2xx at least once)",
            self.accepted
        );
        println!("  stored     {} ledger rows for them", self.stored);
        println!("  lost       {}", self.lost);
        println!("  doubled    {}", self.doubled);
        println!("  unaccepted {} (gave up without a 2xx)", self.unaccepted);
        for (code, n) in &self.dead_letters {
            println!("  dlq        {code:<24} {n}");
        }
        if !self.missing_dead_letters.is_empty() {
            println!(
                "  dlq        missing poison: {:?}",
                self.missing_dead_letters
            );
        }
        println!("  dlq        {} unexpected", self.unexpected_dead_letters);
        println!("chaos: {}", if self.passed() { "PASS" } else { "FAIL" });
    }
}

const COMPANY: &str = "co_chaos";
/// The poison a run sends, by the code each must be dead-lettered with.
const POISON: [&str; 3] = ["undecodable", "unknown_version", "unknown_tenant"];

fn source(id: &str, provider: Provider, tenant: TenantRule, secret: SigningSecret) -> Source {
    Source {
        source_id: id.to_owned(),
        provider,
        tenant,
        secrets: vec![SourceSecret {
            secret,
            not_after_ms: None,
        }],
        tolerance_secs: 300,
        rate_limit: None,
        body_limit: DEFAULT_BODY_LIMIT,
        enabled: true,
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

/// Sends the poison: two messages straight onto the events queue, and a signed event through
/// the gateway that names a company which does not exist.
async fn poison(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    http: &reqwest::Client,
    gateway: &str,
    seed: u64,
) -> anyhow::Result<()> {
    for body in ["not an envelope", r#"{"version":9,"body":{}}"#] {
        sqs.send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .context("sending poison")?;
    }
    let body = format!(
        r#"{{"type":"payment.failed","company_id":"co_nobody_{seed}","data":{{"id":"pay_x"}}}}"#
    );
    let mut request = http
        .post(format!("{gateway}/webhooks/whop/chaos_whop"))
        .body(body.clone());
    for (name, value) in Provider::Whop.sign(
        &Provider::Whop.demo_secret(),
        body.as_bytes(),
        inlet_core::clock::now_secs(),
        &format!("msg_poison_{seed}"),
    ) {
        request = request.header(name, value);
    }
    let status = request.send().await?.status();
    if status.as_u16() != 202 {
        return Err(anyhow!(
            "the unknown-tenant poison was answered {status}, not 202"
        ));
    }
    Ok(())
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    Ok(attributes
        .attributes()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum())
}

/// Every dead letter's code (`inlet_error_code`, or `retries_exhausted` when SQS moved it).
async fn dead_letter_codes(sqs: &aws_sdk_sqs::Client, dlq: &str) -> anyhow::Result<Vec<String>> {
    let mut codes = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dlq)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .visibility_timeout(600)
            .send()
            .await?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(codes);
        }
        for message in messages {
            let code = message
                .message_attributes()
                .and_then(|a| a.get("inlet_error_code"))
                .and_then(|v| v.string_value())
                .unwrap_or("retries_exhausted");
            codes.push(code.to_owned());
        }
    }
}

/// One run: set up, storm with faults and poison, drain, verify.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let postgres = ScratchPostgres::start().await;
    let admin = inlet_postgres::connect(&postgres.admin_url()).await?;
    admin
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Chaos')",
            &[&COMPANY],
        )
        .await?;
    let work = options
        .bin_dir
        .join(format!("chaos-{}", std::process::id()));
    let template = stack::chaos_template(&options.template, &work, 20, 5)?;
    let prefix = format!("chaos{}x{}_", std::process::id(), options.seed);
    let stack = stack::Stack::start(
        &options.bin_dir.join("inlet"),
        &template,
        &options.bin_dir,
        &prefix,
        &[
            ("DATABASE_URL", postgres.app_url()),
            ("SCHEDULER_DATABASE_URL", postgres.scheduler_url()),
            ("OPS_DATABASE_URL", postgres.ops_url()),
        ],
    )
    .await?;
    let sdk = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let queue_url = format!("{endpoint}/123456789012/{prefix}EventsQueue");
    let dlq_url = format!("{endpoint}/123456789012/{prefix}EventsDLQ");
    let sources = DynamoSources::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        format!("{prefix}SourcesTable"),
        KeyRing::from_env()?,
    );
    let secret = SigningSecret::new(format!("whsec_chaos_{}", options.seed));
    sources
        .put(&source(
            "chaos_stripe",
            Provider::Stripe,
            TenantRule::Fixed(CompanyId::parse(COMPANY)?),
            secret.clone(),
        ))
        .await?;
    sources
        .put(&source(
            "chaos_whop",
            Provider::Whop,
            TenantRule::Pointer("/company_id".into()),
            Provider::Whop.demo_secret(),
        ))
        .await?;

    let plan = send::plan(options.events, options.max_deliveries, options.seed);
    let deliveries: usize = plan.iter().map(|e| e.deliveries as usize).sum();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let target = Arc::new(Target {
        url: format!("{}/webhooks/stripe/chaos_stripe", stack.url),
        secret,
        deadline: Instant::now() + options.patience,
    });
    let tally = Arc::new(Tally::default());
    let storm = tokio::spawn(send::storm(
        http.clone(),
        target,
        plan.clone(),
        options.senders,
        options.seed,
        tally.clone(),
    ));
    poison(&sqs, &queue_url, &http, &stack.url, options.seed).await?;

    let mut faults = Vec::new();
    let stack_pid = stack
        .pid()
        .ok_or_else(|| anyhow!("the stack is not running"))?;
    for (at, fault) in faults::schedule(options.kills, options.postgres_restarts) {
        let threshold = (at * deliveries as f64) as usize;
        while tally.done.load(Ordering::Relaxed) < threshold && !storm.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        faults.push(faults::fire(fault, stack_pid, &postgres).await);
    }
    storm.await?;

    // Drain: every accepted event in the ledger and the events queue empty.
    let accepted = tally.accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let ids: Vec<String> = accepted.iter().cloned().collect();
    let drained_by = Instant::now() + options.patience;
    let admin = inlet_postgres::connect(&postgres.admin_url()).await?;
    loop {
        let stored: i64 = admin
            .query_one(
                "SELECT count(*) FROM webhook_events WHERE provider_event_id = ANY($1)",
                &[&ids],
            )
            .await?
            .get(0);
        let depth = queue_depth(&sqs, &queue_url).await?;
        if (stored as usize >= ids.len() && depth == 0) || Instant::now() > drained_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let stored: BTreeSet<String> = admin
        .query(
            "SELECT provider_event_id FROM webhook_events WHERE company_id = $1",
            &[&COMPANY],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let paid = plan
        .iter()
        .filter(|e| e.kind == Kind::Paid && stored.contains(&e.id))
        .count() as i64;
    let customers = plan
        .iter()
        .filter(|e| e.kind == Kind::Customer && stored.contains(&e.id))
        .count() as i64;
    let payments = count(
        &admin,
        "SELECT count(*) FROM payments WHERE company_id = 'co_chaos'",
    )
    .await?;
    let members = count(
        &admin,
        "SELECT count(*) FROM members WHERE company_id = 'co_chaos'",
    )
    .await?;
    let ledger_doubles = count(
        &admin,
        "SELECT count(*) - count(DISTINCT provider_event_id) FROM webhook_events",
    )
    .await?;

    let mut dead_letters: BTreeMap<String, usize> = BTreeMap::new();
    for code in dead_letter_codes(&sqs, &dlq_url).await? {
        *dead_letters.entry(code).or_default() += 1;
    }
    let expected: usize = POISON.len();
    let poison_found: usize = POISON
        .iter()
        .map(|p| dead_letters.get(*p).copied().unwrap_or(0).min(1))
        .sum();
    let total_dead: usize = dead_letters.values().sum();
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&work);

    Ok(Report {
        events: plan.len(),
        deliveries,
        attempts: tally.attempts.load(Ordering::Relaxed),
        accepted: accepted.len(),
        unaccepted: tally.unaccepted.lock().map(|u| u.len()).unwrap_or(0),
        stored: accepted.iter().filter(|id| stored.contains(*id)).count(),
        lost: accepted.iter().filter(|id| !stored.contains(*id)).count(),
        doubled: usize::try_from(
            (payments - paid).max(0) + (members - customers).max(0) + ledger_doubles,
        )
        .unwrap_or(usize::MAX),
        answers: tally.answers.lock().map(|a| a.clone()).unwrap_or_default(),
        faults,
        missing_dead_letters: POISON
            .iter()
            .copied()
            .filter(|p| !dead_letters.contains_key(*p))
            .collect(),
        unexpected_dead_letters: total_dead - poison_found.min(expected),
        dead_letters,
        seconds: started.elapsed().as_secs_f64(),
    })
}
