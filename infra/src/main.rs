//! `inlet`: the operator CLI.

use inlet_infra::{events, resources, sources, template};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use inlet_common::db::{self, audit, migrate};
use inlet_common::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "inlet",
    version,
    about = "Operate Inlet: migrations, local services, checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations (forward-only, each recorded with its SHA-256).
    Migrate {
        /// Directory of NNN_name.sql files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Owner (migrator) connection; the application role never migrates.
        #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Database checks.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Check that Postgres and the AWS emulator (or AWS) answer, within a few seconds.
    Status {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Webhook sources: add, list, show, rotate, disable, enable, seed-demo.
    Sources(sources::SourcesArgs),
    /// The sample events in events/.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The local stack.
    Local {
        #[command(subcommand)]
        command: LocalCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Re-sign the webhook samples with the current time and the demo sources' secrets.
    Refresh {
        #[arg(long, default_value = "events")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Create template.yaml's tables and queues in the emulator (idempotent).
    Resources {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Security validation: every tenant table has RLS enabled and forced with a policy per
    /// verb, SECURITY DEFINER functions have a fixed search_path, the app role is powerless.
    Audit {
        #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Create the demo company the local samples belong to (idempotent). Refused in production.
    SeedDemo {
        #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        database_url: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    telemetry::init(LogFormat::Text);
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("inlet: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { dir, database_url } => {
            let migrations = migrate::load_dir(&dir)?;
            let mut client = db::connect(&database_url).await?;
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
        Command::Db {
            command: DbCommand::Audit { database_url },
        } => {
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
        Command::Db {
            command: DbCommand::SeedDemo { database_url },
        } => {
            if std::env::var("INLET_ENV").as_deref() == Ok("production") {
                bail!("refusing to create demo data with INLET_ENV=production");
            }
            let client = db::connect(&database_url).await?;
            let company = inlet_common::intake::demo::DEMO_COMPANY;
            client
                .execute(
                    "INSERT INTO companies (company_id, name) VALUES ($1, 'Demo Company') ON CONFLICT DO NOTHING",
                    &[&company],
                )
                .await?;
            println!("demo company {company} ready");
            Ok(())
        }
        Command::Status { database_url } => status(&database_url).await,
        Command::Sources(args) => sources::run(args).await,
        Command::Events {
            command: EventsCommand::Refresh { dir },
        } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            for name in events::refresh(&dir, i64::try_from(now)?)? {
                println!("re-signed {}", dir.join(name).display());
            }
            Ok(())
        }
        Command::Local {
            command: LocalCommand::Resources { template },
        } => {
            let template = template::Template::load(&template)?;
            let config = inlet_common::aws::sdk_config().await;
            let created = resources::create_all(
                &template,
                &aws_sdk_dynamodb::Client::new(&config),
                &aws_sdk_sqs::Client::new(&config),
            )
            .await?;
            for resource in created {
                println!(
                    "{:<6} {:<20} {}",
                    resource.kind, resource.logical_id, resource.address
                );
            }
            Ok(())
        }
    }
}

async fn status(database_url: &str) -> anyhow::Result<()> {
    let client = db::connect(database_url).await?;
    let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
    println!("postgres: ok (server {version})");

    let config = inlet_common::aws::sdk_config().await;
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
