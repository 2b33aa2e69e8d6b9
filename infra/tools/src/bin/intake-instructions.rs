//! Intake CPU in instructions, for callgrind: runs the intake pipeline (in-memory ports, the
//! accept path) or the HMAC-SHA256 floor alone `--iterations` times over a Stripe event of
//! `--size` bytes. Instruction counts do not move with this machine's noisy neighbours; the
//! per-request figure is the difference between two iteration counts, so set-up cancels out.
//!
//! Run: `infra/scripts/intake-instructions.sh` (builds release, runs valgrind, prints the table).

use std::hint::black_box;

use clap::{Parser, ValueEnum};
use inlet_tools::intake_fixture::{
    hmac_floor, intake_with, run_ready, signed_headers, stripe_event, DiscardingQueue, NOW_MS,
    SOURCE,
};
use inlet_webhooks::intake::IntakeRequest;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// The whole intake pipeline, accept path, with in-memory ports.
    Pipeline,
    /// HMAC-SHA256 over the same body: what any verifier pays.
    Hmac,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value_t = 2048)]
    size: usize,
    #[arg(long, default_value_t = 1000)]
    iterations: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = stripe_event(args.size);
    let headers = signed_headers(&body);
    let intake = intake_with(DiscardingQueue);
    let request = IntakeRequest {
        source_id: SOURCE,
        headers: &headers,
        body: &body,
        received_at_ms: NOW_MS,
        trace_id: None,
    };
    let status = run_ready(intake.handle(&request)).status;
    anyhow::ensure!(
        status == 202,
        "the pipeline must take the accept path, got {status}"
    );
    for _ in 0..args.iterations {
        match args.mode {
            Mode::Pipeline => {
                black_box(run_ready(intake.handle(black_box(&request))));
            }
            Mode::Hmac => {
                black_box(hmac_floor(black_box(&body)));
            }
        }
    }
    Ok(())
}
