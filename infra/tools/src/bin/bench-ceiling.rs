//! How fast could any consumer write what process-events writes? pgbench runs the rows of
//! bench-process's event mix as SQL scripts (`infra/tools/bench/ceiling-*.sql`: the same
//! tables, indexes, constraints, row-level security and rows per event, with none of the
//! consumer's own work) in three shapes, alternating with pgbench's simple-update on the same
//! server, and prints events/s against simple-update TPS: the ceiling of bench-process's ratio
//! for each shape.
//!
//! Run: `make services && . .local/env && cargo run --release -p inlet-tools --bin bench-ceiling`

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use inlet_tools::pgbench::{self, tps, BenchDb};
use inlet_tools::timing::median;

#[derive(Parser)]
#[command(
    about = "The ceiling of event-processing throughput per statement shape, against pgbench"
)]
struct Args {
    /// Concurrent clients (bench-process's consumers).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Seconds of each pgbench run.
    #[arg(long, default_value_t = 8)]
    seconds: u32,
    /// Rounds of all runs, alternated: this machine's speed drifts within minutes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    admin_url: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    app_url: String,
}

/// Each script's transaction writes this many events.
const EVENTS_PER_TRANSACTION: f64 = 8.0;

/// (shape, script, sent as one pipeline).
const SHAPES: [(&str, &str, bool); 3] = [
    (
        "per event, a round trip each",
        "ceiling-per-event.sql",
        false,
    ),
    ("per event, one pipeline", "ceiling-per-event.sql", true),
    ("set-based, one pipeline", "ceiling-set-based.sql", true),
];

/// The script, in a file pgbench reads: as it is, or with its statements between
/// `\startpipeline` and `\endpipeline` (after its comments and `\set` lines).
fn script(file: &str, pipelined: bool) -> anyhow::Result<tempfile::NamedTempFile> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let (head, statements): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.starts_with("--") || l.starts_with("\\set"));
    let mut out = head.join("\n") + "\n";
    if pipelined {
        out += "\\startpipeline\n";
    }
    out += &(statements.join("\n") + "\n");
    if pipelined {
        out += "\\endpipeline\n";
    }
    let mut temp = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut temp, out.as_bytes())?;
    Ok(temp)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bench = BenchDb::create(&args.admin_url, &args.app_url).await?;
    let timed = pgbench::timed(args.clients, args.seconds);
    println!(
        "| round | simple-update TPS | {} |",
        SHAPES
            .map(|(shape, ..)| format!("{shape}: events/s (ratio)"))
            .join(" | ")
    );
    println!("|---|---|---|---|---|");
    let mut ratios: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 1..=args.rounds {
        let mut simple_update = vec!["-b".into(), "simple-update".into()];
        simple_update.extend(timed.clone());
        let floor = tps(&pgbench::run(&bench.admin_url, &simple_update)?)
            .context("pgbench printed no tps")?;
        let mut cells = Vec::new();
        for (shape, file, pipelined) in SHAPES {
            let script = script(file, pipelined)?;
            let mut run = vec![
                "-M".into(),
                "prepared".into(),
                "-f".into(),
                script.path().display().to_string(),
            ];
            run.extend(timed.clone());
            let events = EVENTS_PER_TRANSACTION
                * tps(&pgbench::run(&bench.app_url, &run)?).context("pgbench printed no tps")?;
            cells.push(format!("{events:.0} ({:.2})", events / floor));
            ratios.entry(shape).or_default().push(events / floor);
        }
        println!("| {round} | {floor:.0} | {} |", cells.join(" | "));
    }
    for (shape, ..) in SHAPES {
        let values = ratios.remove(shape).unwrap_or_default();
        println!(
            "{shape}: median ratio {:.2} over {} rounds ({})",
            median(values.clone()),
            values.len(),
            pgbench::listed(&values)
        );
    }
    bench.drop().await
}
