//! The tenant API's authentication cost per request, with a warm container: against a running
//! stack (`make run`), the same route is called, interleaved, with no key (401 before any I/O),
//! with a valid key that lacks the route's scope (403 after the whole check: the key's rate
//! limit in DynamoDB, its lookup in Postgres, the hash) and with a key that may (200: the check,
//! the last-use note and the query). Auth cost = median(403) - median(401), same run.
//!
//! The CPU of the check alone (parse, SHA-256, constant-time compare) is counted in instructions
//! by `--verify-only N` under callgrind (`infra/scripts/auth-instructions.sh`).
//!
//! Run: `make run` in one shell, then `. .local/env && cargo run --release -p inlet-tools --bin
//! bench-auth` (see docs/BENCHMARKS.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use inlet_core::api_key::{NewKey, PresentedKey, Scope};
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::{companies, keys};
use inlet_postgres::Connection;

#[derive(Parser)]
struct Args {
    /// The stack's gateway.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Requests of each kind.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Only verify a key this many times in-process (for callgrind); no network.
    #[arg(long)]
    verify_only: Option<u32>,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: Option<String>,
}

fn verify_only(iterations: u32) -> anyhow::Result<()> {
    let key = NewKey::generate();
    let mut matched = 0u32;
    for _ in 0..iterations {
        let presented =
            PresentedKey::parse(black_box(&key.token)).map_err(|e| anyhow::anyhow!("{e}"))?;
        matched += u32::from(presented.matches(black_box(&key.hash)));
    }
    ensure!(matched == iterations, "every verification must succeed");
    Ok(())
}

fn median_and_p99(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(iterations) = args.verify_only {
        return verify_only(iterations);
    }
    let url = args
        .database_url
        .context("DATABASE_ADMIN_URL is not set: `. .local/env` first")?;
    let mut owner = Connection::from(inlet_postgres::connect(&url).await?);
    let company = CompanyId::parse("bench_auth").map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = Actor::Operator("bench-auth".into());
    companies::add(
        &mut owner,
        &actor,
        &company,
        "bench-auth",
        &Default::default(),
    )
    .await?;
    let unscoped = keys::create(
        &mut owner,
        &actor,
        &company,
        "bench",
        &[Scope::ReportsRead],
        None,
    )
    .await?;
    let scoped = keys::create(
        &mut owner,
        &actor,
        &company,
        "bench",
        &[Scope::EventsRead],
        None,
    )
    .await?;

    let client = reqwest::Client::builder().build()?;
    let route = format!("{}/v1/sources", args.url);
    let call = async |token: Option<&str>| -> anyhow::Result<(u16, Duration)> {
        let mut request = client.get(&route);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok((status, started.elapsed()))
    };
    // Warm every path (and the container) first.
    for _ in 0..20 {
        call(None).await?;
        call(Some(&unscoped.token)).await?;
        call(Some(&scoped.token)).await?;
    }
    let (mut none, mut refused, mut allowed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.requests {
        for (token, expect, into) in [
            (None, 401, &mut none),
            (Some(unscoped.token.as_str()), 403, &mut refused),
            (Some(scoped.token.as_str()), 200, &mut allowed),
        ] {
            let (status, took) = call(token).await?;
            ensure!(status == expect, "expected {expect}, got {status}");
            into.push(took);
        }
        // Under the key's rate limit (50/s by default).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for key_id in [&unscoped.key_id, &scoped.key_id] {
        keys::revoke(&mut owner, &actor, &company, key_id).await?;
    }
    let (n50, n99) = median_and_p99(none);
    let (r50, r99) = median_and_p99(refused);
    let (a50, a99) = median_and_p99(allowed);
    println!(
        "{} requests of each kind, interleaved, GET /v1/sources",
        args.requests
    );
    println!("{:<34} {:>10} {:>10}", "", "median", "p99");
    println!(
        "{:<34} {:>10.2?} {:>10.2?}",
        "no key (401, no I/O)", n50, n99
    );
    println!(
        "{:<34} {:>10.2?} {:>10.2?}",
        "key without scope (403, full check)", r50, r99
    );
    println!(
        "{:<34} {:>10.2?} {:>10.2?}",
        "key with scope (200, check + query)", a50, a99
    );
    println!(
        "auth cost per request (median 403 - median 401): {:.2?}",
        r50.saturating_sub(n50)
    );
    Ok(())
}
