//! `inlet replay`: events from the ledger sent again, marked as replays, so the consumer
//! re-applies them (idempotently, in their object's order). Runs as the owner
//! (`DATABASE_ADMIN_URL`), across tenants unless `--company` narrows it.

use anyhow::{anyhow, bail};
use clap::Args;
use inlet_adapters::aws::{queue_url, SqsQueue};
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::ops::replay::{self, Selection};
use inlet_postgres::Connection;

use crate::dlq::Stack;

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    stack: Stack,
    /// One event, by the provider's event id.
    #[arg(long)]
    event: Option<String>,
    #[arg(long)]
    company: Option<String>,
    #[arg(long)]
    provider: Option<String>,
    /// The event type, e.g. invoice.payment_failed.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// The ledger status: completed, ignored, skipped_stale.
    #[arg(long)]
    status: Option<String>,
    /// Received at or after (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Received before (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    #[arg(long, default_value_t = 1000)]
    limit: i64,
    /// Print how many and which; send nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
    database_url: String,
    #[arg(
        long,
        env = "EVENTS_QUEUE_MAX_MESSAGE_BYTES",
        default_value_t = 1_048_576
    )]
    max_message_bytes: usize,
}

fn rfc3339(flag: &str, value: Option<String>) -> anyhow::Result<Option<String>> {
    match value {
        Some(text) => {
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    anyhow!(
                        "{flag} {text:?}: expected an RFC 3339 time such as 2026-12-01T00:00:00Z"
                    )
                })?;
            Ok(Some(text))
        }
        None => Ok(None),
    }
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(company) = &args.company {
        CompanyId::parse(company).map_err(|e| anyhow!("--company {company:?}: {e}"))?;
    }
    if let Some(status) = &args.status {
        if ![
            "completed",
            "ignored",
            "skipped_stale",
            "received",
            "failed",
        ]
        .contains(&status.as_str())
        {
            bail!(
                "--status {status:?}: one of completed, ignored, skipped_stale, received, failed"
            );
        }
    }
    if !(1..=100_000).contains(&args.limit) {
        bail!("--limit must be between 1 and 100000");
    }
    let nothing_selected = args.event.is_none()
        && args.company.is_none()
        && args.provider.is_none()
        && args.event_type.is_none()
        && args.status.is_none()
        && args.since.is_none()
        && args.until.is_none();
    if nothing_selected {
        bail!("say what to replay: --event ID, or filters (--company, --provider, --type, --status, --since, --until)");
    }
    let selection = Selection {
        event_id: args.event,
        row_id: None,
        company: args.company,
        provider: args.provider,
        event_type: args.event_type,
        status: args.status,
        since: rfc3339("--since", args.since)?,
        until: rfc3339("--until", args.until)?,
        limit: args.limit,
    };
    let keys = KeyRing::from_env()?;
    let mut connection = Connection::from(inlet_postgres::connect(&args.database_url).await?);
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let events_queue = args.stack.name("EventsQueue");
    let queue = SqsQueue::new(
        sqs.clone(),
        queue_url(&sqs, &events_queue).await?,
        args.max_message_bytes,
    );
    let replayed = replay::replay(
        &mut connection,
        &Actor::operator_from_env(),
        &queue,
        &keys,
        &selection,
        args.dry_run,
    )
    .await?;
    if replayed.selected.is_empty() {
        bail!("no event matches; nothing replayed");
    }
    for (company, event_id) in &replayed.selected {
        println!("{company} {event_id}");
    }
    if args.dry_run {
        println!(
            "dry run: {} event(s) would be replayed; nothing sent",
            replayed.selected.len()
        );
    } else {
        println!("{} event(s) replayed to {events_queue}", replayed.enqueued);
    }
    Ok(())
}
