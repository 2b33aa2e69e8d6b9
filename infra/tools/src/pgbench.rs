//! What the database benchmarks share: a throwaway database with the migrations and the bench
//! companies, pgbench, and CPU time from /proc.

use anyhow::{bail, Context};
use inlet_postgres::{self as db, migrate};
use inlet_testing::{migrations_dir, with_dbname};

/// Companies `co_bench_0` .. `co_bench_9`: the benches spread their events over them.
pub const COMPANIES: usize = 10;

/// Records per batch, as process-events receives them: its `BatchSize` in template.yaml (a
/// test holds the two equal).
pub const PROCESS_BATCH_SIZE: u16 = 50;

/// A database of its own on the local server, migrated, with the bench companies and pgbench's
/// tables (scale 10); dropped by [`BenchDb::drop`].
pub struct BenchDb {
    name: String,
    server: tokio_postgres::Client,
    pub admin: tokio_postgres::Client,
    pub admin_url: String,
    pub app_url: String,
}

impl BenchDb {
    pub async fn create(admin_url: &str, app_url: &str) -> anyhow::Result<Self> {
        let name = format!("inlet_bench_{}", std::process::id());
        let server = db::connect(admin_url).await?;
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let admin_url = with_dbname(admin_url, &name);
        let app_url = with_dbname(app_url, &name);
        let mut admin = db::connect(&admin_url).await?;
        migrate::apply(&mut admin, &migrate::load_dir(&migrations_dir())?).await?;
        for c in 0..COMPANIES {
            admin
                .execute(
                    "INSERT INTO companies (company_id, name) VALUES ($1, $1)",
                    &[&format!("co_bench_{c}")],
                )
                .await?;
        }
        run(
            &admin_url,
            &["-i".into(), "-q".into(), "-s".into(), "10".into()],
        )?;
        Ok(Self {
            name,
            server,
            admin,
            admin_url,
            app_url,
        })
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        drop(self.admin);
        self.server
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await?;
        Ok(())
    }
}

/// Runs Debian's pgbench against `url` and returns its report.
pub fn run(url: &str, args: &[String]) -> anyhow::Result<String> {
    let bin = ["/usr/lib/postgresql/15/bin/pgbench", "pgbench"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok()
        })
        .context("pgbench not found (Debian's postgresql package installs it)")?;
    let output = std::process::Command::new(bin)
        .args(args)
        .arg(url)
        .output()?;
    if !output.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The arguments of a pgbench run of `seconds` with `clients`, without vacuuming.
pub fn timed(clients: usize, seconds: u32) -> Vec<String> {
    vec![
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        clients.min(2).to_string(),
        "-T".into(),
        seconds.to_string(),
        "-n".into(),
    ]
}

/// Transactions per second from a pgbench report.
pub fn tps(report: &str) -> Option<f64> {
    report
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time used so far, in clock ticks: by the whole machine (busy, all cores), by this
/// process (the consumers, exited threads included) and by its waited-for children (pgbench).
/// Postgres's share of a phase is the machine's less ours and our children's: backends that
/// exit during the phase are counted too, which summing live processes would miss.
pub fn cpu_ticks() -> (u64, u64, u64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal: all but idle and iowait.
            Some(fields.iter().take(8).sum::<u64>() - fields.get(3)? - fields.get(4)?)
        })
        .unwrap_or(0);
    let (own, children) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            Some((
                fields.get(11)? + fields.get(12)?,
                fields.get(13)? + fields.get(14)?,
            ))
        })
        .unwrap_or((0, 0));
    (machine, own, children)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// `values` in order, rounded: beside a median, what it is the median of.
pub fn listed(values: &[f64]) -> String {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    let listed: Vec<String> = values.iter().map(|r| format!("{r:.2}")).collect();
    listed.join(", ")
}
