//! `inlet migrate`, `inlet db audit`, `inlet status`: the database's schema and health, and
//! whether the local services answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use inlet_postgres::{self as db, audit, migrate};

#[derive(Args)]
pub struct MigrateArgs {
    /// Directory of NNN_name.sql files.
    #[arg(long, default_value = "migrations")]
    dir: PathBuf,
    /// Owner (migrator) connection; the application role never migrates.
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: String,
}

/// Applies pending migrations, each recorded with its SHA-256.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
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
