//! `inlet migrate`, `inlet db audit`, `inlet status`: the database's schema and health, and
//! whether the local services answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use inlet_postgres::{self as db, audit, migrate};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MigrateArgs {
    #[command(subcommand)]
    command: Option<MigrateCommand>,
    #[command(flatten)]
    target: MigrationTarget,
}

#[derive(Args)]
pub struct MigrationTarget {
    /// Directory of NNN_name.sql files.
    #[arg(long, default_value = "migrations")]
    dir: PathBuf,
    /// Owner (migrator) connection; the application role never migrates.
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Compare the repository's migrations (SHA-256) with what the database recorded, and
    /// record the run in migration_verifications. Exits 1 on any difference.
    Verify {
        #[command(flatten)]
        target: MigrationTarget,
        /// The repository's commit; default: `git rev-parse HEAD`, else `unknown`.
        #[arg(long, env = "INLET_COMMIT_SHA")]
        commit: Option<String>,
        /// The environment verified (recorded with the run).
        #[arg(long, env = "INLET_ENV", default_value = "local")]
        environment: String,
    },
}

/// `inlet migrate`: applies pending migrations; `inlet migrate verify`: checks them.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    match args.command {
        None => apply(args.target).await,
        Some(MigrateCommand::Verify {
            target,
            commit,
            environment,
        }) => verify(target, commit, &environment).await,
    }
}

/// Applies pending migrations, each recorded with its SHA-256.
async fn apply(args: MigrationTarget) -> anyhow::Result<()> {
    let migrations = migrate::load_dir(&args.dir)?;
    let mut client = db::connect(&args.database_url).await?;
    let report = migrate::apply(&mut client, &migrations).await?;
    for name in &report.applied {
        println!("applied {name}");
    }
    println!(
        "migrations: {} applied now, {} already applied",
        report.applied.len(),
        report.already_applied
    );
    Ok(())
}

fn head_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|sha| sha.trim().to_owned())
        .filter(|sha| sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn verify(
    args: MigrationTarget,
    commit: Option<String>,
    environment: &str,
) -> anyhow::Result<()> {
    let commit = commit.unwrap_or_else(head_commit).to_ascii_lowercase();
    let valid_commit = commit == "unknown"
        || ((7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid_commit {
        bail!("--commit must be 7-64 hex digits or `unknown`");
    }
    let environment_ok = (1..=32).contains(&environment.len())
        && environment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !environment_ok {
        bail!("--environment must be 1-32 of [a-z0-9_-]");
    }
    let migrations = migrate::load_dir(&args.dir)?;
    let client = db::connect(&args.database_url).await?;
    let context = migrate::VerifyContext {
        commit_sha: &commit,
        environment,
    };
    let verification = migrate::verify(&client, &migrations, &context).await?;
    for finding in &verification.findings {
        println!("MISMATCH {finding}");
    }
    let short = &commit[..commit.len().min(12)];
    if verification.matches() {
        println!(
            "migrations verified: {} match (commit {short}, {environment}, {} ms; recorded)",
            verification.checked, verification.duration_ms
        );
        Ok(())
    } else {
        bail!(
            "migrations differ from the database: {} difference(s) (commit {short}, {environment}; recorded)",
            verification.findings.len()
        )
    }
}

#[derive(Subcommand)]
pub enum DbCommand {
    /// Security validation: every tenant table has RLS enabled and forced with a policy per
    /// verb, SECURITY DEFINER functions have a fixed search_path, the app role is powerless.
    Audit {
        #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        database_url: String,
    },
}

pub async fn db(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Audit { database_url } => {
            let client = db::connect(&database_url).await?;
            let findings = audit::tenancy_findings(&client).await?;
            if findings.is_empty() {
                let tables = audit::tenant_tables(&client).await?;
                println!("tenancy audit: clean ({} tenant tables)", tables.len());
                return Ok(());
            }
            for finding in &findings {
                println!("FAIL {finding}");
            }
            bail!("tenancy audit found {} problem(s)", findings.len())
        }
    }
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

/// Whether Postgres and the AWS endpoint answer, within a few seconds each.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = db::connect(&args.database_url).await?;
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    println!("postgres: ok (server {version})");

    let config = inlet_adapters::aws::sdk_config().await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".to_owned());
    let hint = || {
        format!(
            "the AWS endpoint {endpoint} does not answer; start the local services with \
             `make services` (or check AWS_ENDPOINT_URL)"
        )
    };
    let sqs = aws_sdk_sqs::Client::new(&config);
    tokio::time::timeout(Duration::from_secs(10), sqs.list_queues().send())
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(hint)?;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    tokio::time::timeout(Duration::from_secs(10), dynamodb.list_tables().send())
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(hint)?;
    println!("sqs, dynamodb: ok ({endpoint})");
    Ok(())
}
