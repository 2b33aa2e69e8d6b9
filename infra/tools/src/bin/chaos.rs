//! `make chaos`: the fault-injection suite against the local stack. Prints its figures and
//! exits non-zero when an accepted event was lost or applied twice, a delivery never got a 2xx,
//! or the dead-letter queue holds anything but the poison.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use inlet_tools::chaos::{self, Options};

#[derive(Parser)]
#[command(
    name = "chaos",
    about = "Replay storm, kill -9 and a Postgres restart against the local stack"
)]
struct Args {
    /// Distinct events to send.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Each event is delivered 1..=this many times.
    #[arg(long, default_value_t = 3)]
    max_deliveries: u32,
    /// Concurrent senders.
    #[arg(long, default_value_t = 16)]
    senders: usize,
    /// Function processes killed with SIGKILL during the run.
    #[arg(long, default_value_t = 3)]
    kills: u32,
    /// Postgres restarts during the run.
    #[arg(long, default_value_t = 1)]
    postgres_restarts: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Where the function binaries and `inlet` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds a delivery keeps being retried, and the stack gets to drain.
    #[arg(long, default_value_t = 180)]
    patience_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let bin_dir = args.bin_dir.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
    });
    let Some(bin_dir) = bin_dir else {
        eprintln!("chaos: cannot find the binaries; give --bin-dir");
        return ExitCode::FAILURE;
    };
    let options = Options {
        events: args.events,
        max_deliveries: args.max_deliveries,
        senders: args.senders,
        kills: args.kills,
        postgres_restarts: args.postgres_restarts,
        seed: args.seed,
        template: args.template,
        bin_dir,
        patience: Duration::from_secs(args.patience_secs),
    };
    match chaos::run(options).await {
        Ok(report) => {
            report.print();
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("chaos: {error:#}");
            ExitCode::FAILURE
        }
    }
}
