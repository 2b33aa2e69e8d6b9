//! The console's page weight and server time per view, with 100,000 ledger rows for the tenant.
//!
//! Starts its own local stack (`inlet local` with the release binaries beside this one: the real
//! `console` binary behind the local gateway, against the local Postgres and moto), seeds a
//! company with `--rows` ledger rows once (kept for later runs), signs in with a fresh key, then
//! requests every view `--requests` times in turn. Reported per view: the HTML's bytes, the
//! server time (the invocation's `Duration` from its REPORT line: the in-process tenant API call
//! with its key check, rate-limit call and queries, and the rendering) and the time a client saw.
//!
//! Run: `cargo build --release --workspace --bins && . .local/env && target/release/bench-console`
//! after `make services` (see docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use inlet_core::api_key::Scope;
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::{companies, keys};
use inlet_postgres::Connection;
use inlet_tools::chaos::stack::Stack;
use inlet_tools::timing::median;

const COMPANY: &str = "bench_console";

#[derive(Parser)]
struct Args {
    /// Ledger rows of the tenant.
    #[arg(long, default_value_t = 100_000)]
    rows: i64,
    /// Requests per view.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The tenant: `rows` completed events over the last 30 days (as processing leaves them), 200
/// recovery cases with a reminder each, two variants.
async fn seed(owner: &mut Connection, rows: i64) -> anyhow::Result<()> {
    let company = CompanyId::parse(COMPANY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = Actor::Operator("bench-console".into());
    let have: i64 = owner
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE company_id = $1",
            &[&COMPANY],
        )
        .await?
        .get(0);
    if have >= rows {
        return Ok(());
    }
    companies::add(
        owner,
        &actor,
        &company,
        "bench-console",
        &Default::default(),
    )
    .await?;
    eprintln!("seeding {rows} ledger rows for {COMPANY} (once) ...");
    owner
        .batch_execute(&format!(
            "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id,
                 event_type, object_type, object_id, occurred_at, received_at, processed_at,
                 status, payload_min)
             SELECT '{COMPANY}', 'src_bench_console', 'stripe', 'evt_bc_' || i,
                    (ARRAY['invoice.paid', 'invoice.payment_failed', 'customer.subscription.updated'])[1 + i % 3],
                    'invoice', 'in_bc_' || (i % 5000),
                    now() - i * interval '25 seconds', now() - i * interval '25 seconds',
                    now() - i * interval '25 seconds' + interval '40 milliseconds', 'completed',
                    jsonb_build_object('id', 'evt_bc_' || i, 'type', 'invoice.paid',
                        'data', jsonb_build_object('id', 'in_bc_' || (i % 5000), 'amount_due', 4900, 'currency', 'usd'))
               FROM generate_series({have} + 1, {rows}) i;
             INSERT INTO source_activity (company_id, source_id, provider, events,
                 first_received_at, last_received_at)
             VALUES ('{COMPANY}', 'src_bench_console', 'stripe', {rows}, now() - interval '30 days', now())
             ON CONFLICT DO NOTHING;
             DO $$
             DECLARE v1 bigint; v2 bigint; c bigint; r bigint;
             BEGIN
               IF EXISTS (SELECT 1 FROM ab_test_variants WHERE company_id = '{COMPANY}') THEN RETURN; END IF;
               INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
                 VALUES ('{COMPANY}', 'email', 'Friendly', 's', 'b') RETURNING id INTO v1;
               INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template)
                 VALUES ('{COMPANY}', 'email', 'Urgent', 's', 'b') RETURNING id INTO v2;
               FOR i IN 1..200 LOOP
                 INSERT INTO recovery_cases (company_id, provider, membership_external_id,
                     opened_by_payment, amount_at_risk, currency, opened_at)
                   VALUES ('{COMPANY}', 'stripe', 'sub_bc_' || i, 'in_bc_' || i, 4900, 'usd',
                           now() - i * interval '1 hour') RETURNING id INTO c;
                 INSERT INTO reminders (company_id, case_id, offset_hours, due_at, status)
                   VALUES ('{COMPANY}', c, 0, now() - i * interval '1 hour', 'sent') RETURNING id INTO r;
                 INSERT INTO ab_test_usage (company_id, variant_id, reminder_id, case_id)
                   VALUES ('{COMPANY}', CASE WHEN i % 2 = 0 THEN v1 ELSE v2 END, r, c);
               END LOOP;
             END $$;
             ANALYZE webhook_events;"
        ))
        .await?;
    Ok(())
}

/// The Lambda `Duration` of each console invocation reported since line `from` (REPORT lines of
/// `ConsoleFunction`, in order): the handler's time as AWS would bill it, without the gateway.
fn server_times(lines: &[String], from: usize) -> Vec<f64> {
    lines
        .iter()
        .skip(from)
        .filter(|l| l.contains("[ConsoleFunction] REPORT"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("\tDuration: ")?;
            rest.split_once(" ms")?.0.parse().ok()
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args
        .database_url
        .context("DATABASE_ADMIN_URL is not set: `. .local/env` first")?;
    let mut owner = Connection::from(inlet_postgres::connect(&url).await?);
    seed(&mut owner, args.rows).await?;
    let company = CompanyId::parse(COMPANY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = Actor::Operator("bench-console".into());
    let key = keys::create(
        &mut owner,
        &actor,
        &company,
        "bench",
        &[Scope::Admin, Scope::Operator],
        None,
    )
    .await?;
    let event_id: i64 = owner
        .query_one(
            "SELECT max(id) FROM webhook_events WHERE company_id = $1",
            &[&COMPANY],
        )
        .await?
        .get(0);
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("no binary directory")?
        .to_owned();
    let stack = Stack::start(
        &bin_dir.join("inlet"),
        std::path::Path::new("template.yaml"),
        &bin_dir,
        "benchconsole_",
        &[],
    )
    .await
    .context("the release binaries are built first: cargo build --release --workspace --bins")?;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let sign_in = client
        .get(format!("{}/console/sign-in", stack.url))
        .send()
        .await?;
    let token_cookie = sign_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix("inlet_sign_in=")
                .and_then(|v| v.split(';').next())
                .map(str::to_owned)
        })
        .context("no sign-in cookie")?;
    let answer = client
        .post(format!("{}/console/sign-in", stack.url))
        .header("cookie", format!("inlet_sign_in={token_cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token_cookie}&key={}", key.token))
        .send()
        .await?;
    let session = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("inlet_session=") && !v.starts_with("inlet_session=;"))
        .and_then(|v| v.split(';').next())
        .context("sign-in gave no session")?
        .to_owned();

    let views = [
        ("events (first page)", "/console/events".to_owned()),
        (
            "events, filtered by type",
            "/console/events?type=invoice.paid".to_owned(),
        ),
        ("event detail", format!("/console/events/{event_id}")),
        ("failures", "/console/failures".to_owned()),
        ("sources", "/console/sources".to_owned()),
        ("recovery", "/console/recovery".to_owned()),
        ("A/B", "/console/ab".to_owned()),
        ("health", "/console/health".to_owned()),
    ];
    let mut assets = 0;
    for asset in ["/console/assets/app.css", "/console/assets/app.js"] {
        assets += client
            .get(format!("{}{asset}", stack.url))
            .send()
            .await?
            .bytes()
            .await?
            .len();
    }
    println!(
        "{} ledger rows for the tenant; {} requests per view, release build; assets (CSS + JS, cached): {assets} bytes",
        args.rows, args.requests
    );
    println!(
        "{:<30} {:>8} {:>14} {:>14} {:>14}",
        "view", "bytes", "server median", "server p95", "client median"
    );
    for (name, path) in &views {
        let before = stack.lines.lock().map(|l| l.len()).unwrap_or(0);
        let (mut client_ms, mut bytes) = (Vec::new(), 0);
        for i in 0..args.requests + 5 {
            let started = Instant::now();
            let response = client
                .get(format!("{}{path}", stack.url))
                .header("cookie", &session)
                .send()
                .await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            ensure!(status == 200, "{path}: {status}");
            if i >= 5 {
                client_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            bytes = body.len();
            // Under the key's rate limit (50/s).
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server: Vec<f64> = stack
            .lines
            .lock()
            .map(|l| server_times(&l, before))
            .unwrap_or_default()
            .into_iter()
            .skip(5)
            .collect();
        ensure!(
            server.len() >= args.requests,
            "{name}: only {} server times logged",
            server.len()
        );
        let mut sorted = server.clone();
        sorted.sort_by(f64::total_cmp);
        let p95 = sorted[((sorted.len() as f64 - 1.0) * 0.95).round() as usize];
        println!(
            "{name:<30} {bytes:>8} {:>11.2} ms {p95:>11.2} ms {:>11.2} ms",
            median(server),
            median(client_ms)
        );
    }
    keys::revoke(&mut owner, &actor, &company, &key.key_id).await?;
    Ok(())
}
