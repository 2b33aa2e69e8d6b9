//! The faults a run injects: SIGKILL of a function process (as Lambda loses a container
//! mid-invocation) and a Postgres restart (a failover).

use std::time::{Duration, Instant};

use inlet_testing::ScratchPostgres;

/// One fault, fired once the senders have made `at` (a fraction) of their deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL every running process of this function binary.
    Kill(&'static str),
    /// `pg_ctl stop -m fast`, then start again on the same port.
    RestartPostgres,
}

/// The faults of a run, spread over the sending: kills alternate between the consumer and the
/// Stripe intake function, the Postgres restarts fall between them.
pub fn schedule(kills: u32, restarts: u32) -> Vec<(f64, Fault)> {
    let total = kills + restarts;
    let mut faults = Vec::new();
    let (mut kill, mut restart) = (0, 0);
    for n in 0..total {
        let at = f64::from(n + 1) / f64::from(total + 1);
        // Restarts go to the middle positions, kills around them.
        let wants_restart = restart < restarts && (n % 2 == 1 || kill >= kills);
        if wants_restart {
            faults.push((at, Fault::RestartPostgres));
            restart += 1;
        } else {
            let binary = if kill % 2 == 0 {
                "process-events"
            } else {
                "webhook-stripe"
            };
            faults.push((at, Fault::Kill(binary)));
            kill += 1;
        }
    }
    faults
}

/// The pids of `binary` among the children of `parent` (the stack).
fn children_named(parent: u32, binary: &str) -> Vec<u32> {
    let output = std::process::Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == binary)
        })
        .collect()
}

/// Fires one fault; returns what it did, for the report.
pub async fn fire(fault: Fault, stack_pid: u32, postgres: &ScratchPostgres) -> String {
    match fault {
        Fault::Kill(binary) => {
            let pids = children_named(stack_pid, binary);
            for pid in &pids {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            if pids.is_empty() {
                format!("kill -9 {binary}: no process running at that moment")
            } else {
                format!("kill -9 {binary} (pid {pids:?})")
            }
        }
        Fault::RestartPostgres => {
            let started = Instant::now();
            postgres.stop_server();
            // Down long enough for consumers to notice, as in a failover.
            tokio::time::sleep(Duration::from_millis(500)).await;
            postgres.start_server();
            format!(
                "Postgres restarted (down {} ms)",
                started.elapsed().as_millis()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_spread_over_the_run_with_restarts_between_kills() {
        assert_eq!(
            schedule(3, 1),
            [
                (0.2, Fault::Kill("process-events")),
                (0.4, Fault::RestartPostgres),
                (0.6, Fault::Kill("webhook-stripe")),
                (0.8, Fault::Kill("process-events")),
            ]
        );
        assert_eq!(schedule(0, 0), []);
        assert_eq!(schedule(0, 2).len(), 2);
    }
}
