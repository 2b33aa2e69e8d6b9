//! `inlet`: the operator CLI. This file only parses the command line and dispatches; each
//! command lives in its module of the `inlet_infra` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use inlet_infra::{
    alerts, audit, companies, database, dlq, events, keys, local, privacy, replay, send, sources,
};

#[derive(Parser)]
#[command(
    name = "inlet",
    version,
    about = "Operate Inlet: migrations, tenants, sources, the local cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations (forward-only, each recorded with its SHA-256); `verify`
    /// compares them with the database and records the run.
    Migrate(database::MigrateArgs),
    /// Database checks.
    Db {
        #[command(subcommand)]
        command: database::DbCommand,
    },
    /// Check that Postgres and the AWS emulator (or AWS) answer, within a few seconds.
    Status(database::StatusArgs),
    /// Companies (tenants): add, list, show, set. Onboarding starts here.
    Companies(companies::CompaniesArgs),
    /// Tenant API keys: create (shown once), list, revoke.
    Keys(keys::KeysArgs),
    /// Webhook sources: add, list, show, rotate, disable, enable, seed-demo.
    Sources(sources::SourcesArgs),
    /// The sample events in events/.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// The local stack: with no subcommand, run the whole system from template.yaml.
    Local(local::cli::LocalArgs),
    /// Sign a payload with a source's secret in its provider's scheme and POST it.
    Send(send::SendArgs),
    /// Dead letters: list by cause, show one, redrive (dry run first), purge old ones.
    Dlq(dlq::DlqArgs),
    /// Send events from the ledger again, re-applied by the consumer.
    Replay(replay::ReplayArgs),
    /// Operator alerts: `test` sends a synthetic failure down the real alert path.
    Alerts(alerts::AlertsArgs),
    /// The audit log: `verify` recomputes its hash chains.
    Audit(audit::AuditArgs),
    /// A member's data: `export` (NDJSON on stdout) or `erase` (everywhere).
    Privacy(privacy::PrivacyArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    inlet_infra::init_logging();
    let result = match Cli::parse().command {
        Command::Migrate(args) => database::migrate(args).await,
        Command::Db { command } => database::db(command).await,
        Command::Status(args) => database::status(args).await,
        Command::Companies(args) => companies::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Sources(args) => sources::run(args).await,
        Command::Events { command } => events::command(command),
        Command::Local(args) => local::cli::command(args).await,
        Command::Send(args) => send::command(args).await,
        Command::Dlq(args) => dlq::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Privacy(args) => privacy::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("inlet: {error:#}");
            ExitCode::FAILURE
        }
    }
}
