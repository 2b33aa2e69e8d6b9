//! `inlet`: the operator CLI.

use inlet_infra::local::output::Output;
use inlet_infra::{events, local, resources, send, sources, template};

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use inlet_postgres::{self as db, audit, migrate};

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
    /// The local stack: with no subcommand, run the whole system from template.yaml.
    Local {
        #[command(subcommand)]
        command: Option<LocalCommand>,
        #[command(flatten)]
        up: LocalArgs,
    },
    /// Sign a payload with a source's secret in its provider's scheme and POST it.
    Send {
        /// stripe, clerk, whop, github, shopify, slack or standard.
        provider: String,
        #[arg(long)]
        source: String,
        /// The payload, sent byte for byte.
        #[arg(long)]
        file: PathBuf,
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// An extra header, e.g. `x-github-event: push` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long, env = "SOURCES_TABLE", default_value = "SourcesTable")]
        table: String,
    },
}

#[derive(clap::Args)]
struct LocalArgs {
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// The gateway's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Run release binaries, as deployed.
    #[arg(long)]
    release: bool,
    /// Run the binaries already built in this directory; build nothing.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Hide function logs (REPORT lines and errors stay).
    #[arg(long)]
    quiet: bool,
    /// Show one function's lines only (its logical id).
    #[arg(long)]
    function: Option<String>,
    /// Put before every queue and table name, to run beside another local stack.
    #[arg(long, default_value = "")]
    resource_prefix: String,
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
    /// Invoke one function of the running stack now with an event file.
    Invoke {
        /// The function's logical id, e.g. ProcessEventsFunction.
        function: String,
        #[arg(long)]
        event: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
    },
    /// Fire one function's schedule now on the running stack.
    Trigger {
        function: String,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
    },
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
    inlet_infra::init_logging();
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
            let company = inlet_webhooks::intake::demo::DEMO_COMPANY;
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
        Command::Local { command: None, up } => {
            local::run(local::Options {
                template: up.template,
                port: up.port,
                release: up.release,
                bin_dir: up.bin_dir,
                resource_prefix: up.resource_prefix,
                output: Output {
                    quiet: up.quiet,
                    only: up.function,
                },
            })
            .await
        }
        Command::Local {
            command:
                Some(LocalCommand::Invoke {
                    function,
                    event,
                    url,
                }),
            ..
        } => {
            let body = std::fs::read(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            control(&url, "invoke", &function, body).await
        }
        Command::Local {
            command: Some(LocalCommand::Trigger { function, url }),
            ..
        } => control(&url, "trigger", &function, Vec::new()).await,
        Command::Send {
            provider,
            source,
            file,
            url,
            headers,
            table,
        } => {
            let provider = inlet_webhooks::providers::Provider::parse(&provider)
                .ok_or_else(|| anyhow::anyhow!("unknown provider {provider}"))?;
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let extra_headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--header {h:?}: expected NAME: VALUE"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let answer = send::run(send::Send {
                provider,
                source_id: source,
                body,
                base_url: url,
                table,
                extra_headers,
            })
            .await?;
            println!(
                "{} {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            );
            if !(200..300).contains(&answer.status) {
                bail!("the gateway answered {}", answer.status);
            }
            Ok(())
        }
        Command::Local {
            command: Some(LocalCommand::Resources { template }),
            ..
        } => {
            let template = template::Template::load(&template)?;
            let config = inlet_adapters::aws::sdk_config().await;
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

/// `inlet local invoke|trigger`: asks the running stack, prints the result and the REPORT line.
async fn control(url: &str, action: &str, function: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let endpoint = format!("{}/_inlet/{action}/{function}", url.trim_end_matches('/'));
    let answer = inlet_infra::http::post(&endpoint, &[], bytes::Bytes::from(body)).await?;
    if answer.status != 200 {
        bail!("{}", String::from_utf8_lossy(&answer.body));
    }
    let result: serde_json::Value = serde_json::from_slice(&answer.body)?;
    println!("{}", serde_json::to_string_pretty(&result["payload"])?);
    println!("{}", result["report"].as_str().unwrap_or_default());
    if let Some(error) = result["functionError"].as_str() {
        bail!("{function} failed: {error}");
    }
    Ok(())
}

async fn status(database_url: &str) -> anyhow::Result<()> {
    let client = db::connect(database_url).await?;
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
