//! `inlet dlq list|show|redrive|purge`: every dead-letter queue of template.yaml, sorted by
//! cause, against AWS (`--stack NAME`) or the local stack (`--resource-prefix`, default none).
//! Reading a DLQ consumes nothing: messages are hidden while read, then released.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use inlet_adapters::aws::{queue_url, SqsDeadLetters};
use inlet_core::clock::{age, now_ms};
use inlet_domain::audit::Actor;
use inlet_domain::ops::dead_letters::{self, Filter};
use inlet_domain::ports::DeadMessage;
use inlet_postgres::Connection;
use inlet_webhooks::envelope::Envelope;

use crate::template::Template;

/// Where the queues are: a deployed stack, or the local stack.
#[derive(Args, Clone)]
pub struct Stack {
    /// The deployed stack's name (its queues are named <stack>-<LogicalId>); without it, the
    /// local stack.
    #[arg(long, env = "INLET_STACK", global = true)]
    pub stack: Option<String>,
    /// The local stack's resource prefix (`inlet local --resource-prefix`).
    #[arg(long, default_value = "", global = true)]
    pub resource_prefix: String,
    #[arg(long, default_value = "template.yaml", global = true)]
    pub template: PathBuf,
}

impl Stack {
    /// A resource's physical name.
    pub fn name(&self, logical_id: &str) -> String {
        match &self.stack {
            Some(stack) => format!("{stack}-{logical_id}"),
            None => format!("{}{logical_id}", self.resource_prefix),
        }
    }
}

#[derive(Args)]
pub struct DlqArgs {
    #[command(flatten)]
    stack: Stack,
    /// The owner's connection: redrives and purges are written to the audit log.
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Counts by queue, class, code, provider and tenant, with the oldest age.
    List {
        /// One DLQ (its logical id, e.g. EventsDLQ); all by default.
        #[arg(long)]
        queue: Option<String>,
    },
    /// One dead letter: its attributes and envelope metadata (the body only with --body).
    Show {
        message_id: String,
        #[arg(long)]
        body: bool,
    },
    /// Back to the queue each came from: the copy is sent, then the dead letter deleted.
    Redrive {
        #[arg(long)]
        queue: Option<String>,
        /// Only this code (e.g. unknown_tenant, retries_exhausted).
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        company: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Print what would move; move nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters older than a duration (e.g. 14d, 12h).
    Purge {
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, value_parser = parse_duration)]
        older_than: Duration,
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 7d, 12h, 30m)"))
}

/// The template's DLQs (logical id, source queue's logical id), narrowed to `only`.
fn queues(stack: &Stack, only: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let template = Template::load(&stack.template)?;
    let all = template.dead_letter_queues();
    match only {
        None => Ok(all),
        Some(name) => {
            let known: Vec<&str> = all.iter().map(|(d, _)| d.as_str()).collect();
            all.iter()
                .find(|(dlq, _)| dlq == name)
                .map(|pair| vec![pair.clone()])
                .ok_or_else(|| {
                    anyhow!(
                        "no dead-letter queue {name} in {}; one of {}",
                        stack.template.display(),
                        known.join(", ")
                    )
                })
        }
    }
}

/// What a dead letter says about the event it holds (never the body itself).
fn describe_body(message: &DeadMessage) -> String {
    if let Ok(envelope) = Envelope::from_json(message.body.as_bytes()) {
        let meta = envelope.meta;
        return format!(
            "envelope v{}: source {} provider {} company {} event {} type {} received {}{}",
            meta.version,
            meta.source_id,
            meta.provider,
            meta.company_id,
            meta.event_id,
            meta.event_type,
            meta.received_at,
            if meta.replay { " (replay)" } else { "" }
        );
    }
    match serde_json::from_str::<inlet_domain::reminders::ReminderJob>(&message.body) {
        Ok(job) => format!(
            "reminder job {}: reminder {} case {} company {} attempt {}",
            job.key, job.reminder_id, job.case_id, job.company_id, job.attempt
        ),
        Err(_) => format!(
            "not an envelope or a reminder job ({} bytes)",
            message.body.len()
        ),
    }
}

/// The filter in words, for "nothing matches".
fn describe_filter(filter: &Filter) -> String {
    let parts: Vec<String> = [
        ("code", &filter.code),
        ("provider", &filter.provider),
        ("company", &filter.company),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("--{name} {v}")))
    .collect();
    if parts.is_empty() {
        "(any)".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A connection for the audit row, before anything moves: a change that cannot be audited is
/// not made.
async fn audit_connection(url: Option<&str>, dry_run: bool) -> anyhow::Result<Option<Connection>> {
    if dry_run {
        return Ok(None);
    }
    let url = url.ok_or_else(|| {
        anyhow!("redrives and purges are audited: give --database-url or DATABASE_ADMIN_URL (a dry run needs neither)")
    })?;
    Ok(Some(Connection::from(inlet_postgres::connect(url).await?)))
}

/// One row on the audit log's system chain: a DLQ holds many tenants' letters.
async fn audit_moved(
    connection: Option<&mut Connection>,
    action: &'static str,
    moved: &[(String, &DeadMessage)],
) -> anyhow::Result<()> {
    let Some(connection) = connection else {
        return Ok(());
    };
    if moved.is_empty() {
        return Ok(());
    }
    let mut by_queue_and_code: std::collections::BTreeMap<String, usize> = Default::default();
    for (dlq, message) in moved {
        *by_queue_and_code
            .entry(format!("{dlq}/{}", message.code()))
            .or_default() += 1;
    }
    let details =
        serde_json::json!({ "messages": moved.len(), "by_queue_and_code": by_queue_and_code });
    let tx = connection.tx().await?;
    inlet_domain::audit::record_system(&tx, &Actor::operator_from_env(), action, &details).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let port = SqsDeadLetters::new(sqs.clone());
    let stack = &args.stack;
    let url = async |logical: &str| {
        queue_url(&sqs, &stack.name(logical))
            .await
            .with_context(|| format!("the queue {logical} ({}) was not found; is the stack (--stack / --resource-prefix) right?", stack.name(logical)))
    };
    match args.command {
        DlqCommand::List { queue } => {
            let queues = queues(stack, queue.as_deref())?;
            let now = now_ms();
            println!(
                "{:<14} {:<10} {:<22} {:<9} {:<24} {:>6} {:>7} {:>9}",
                "queue", "class", "code", "provider", "company", "count", "oldest", "receives"
            );
            for (dlq, _) in queues {
                let dlq_url = url(&dlq).await?;
                let scanned = dead_letters::scan(&port, &dlq_url).await?;
                dead_letters::release(&port, &dlq_url, &scanned).await?;
                let messages: Vec<&DeadMessage> = scanned.iter().map(|r| &r.message).collect();
                if messages.is_empty() {
                    println!("{dlq:<14} (empty)");
                }
                for ((class, code, provider, company), group) in dead_letters::group(&messages, now)
                {
                    println!(
                        "{dlq:<14} {class:<10} {code:<22} {provider:<9} {company:<24} {:>6} {:>7} {:>9}",
                        group.count,
                        age(group.oldest_age_ms),
                        group.max_receive_count
                    );
                }
            }
        }
        DlqCommand::Show { message_id, body } => {
            for (dlq, _) in queues(stack, None)? {
                let dlq_url = url(&dlq).await?;
                let scanned = dead_letters::scan(&port, &dlq_url).await?;
                dead_letters::release(&port, &dlq_url, &scanned).await?;
                if let Some(found) = scanned.iter().find(|r| r.message.message_id == message_id) {
                    let message = &found.message;
                    println!("queue          {dlq}");
                    println!("message id     {}", message.message_id);
                    println!("code           {} ({})", message.code(), message.class());
                    println!("age            {}", age(now_ms() - message.sent_at_ms));
                    println!("receives       {}", message.receive_count);
                    for (name, value) in &message.attributes {
                        println!("attribute      {name} = {value}");
                    }
                    println!("holds          {}", describe_body(message));
                    if body {
                        println!("body           {}", message.body);
                    }
                    return Ok(());
                }
            }
            bail!("no dead letter {message_id} in any dead-letter queue (already redriven or purged?)");
        }
        DlqCommand::Redrive {
            queue,
            code,
            provider,
            company,
            limit,
            dry_run,
        } => {
            if let Some(code) = code.as_deref() {
                if inlet_core::DeadLetterCode::parse(code).is_none() {
                    bail!("--code {code}: not a dead-letter code (see docs/DEAD_LETTERS.md)");
                }
            }
            let filter = Filter {
                code,
                provider,
                company,
            };
            let described = describe_filter(&filter);
            let mut audit = audit_connection(args.database_url.as_deref(), dry_run).await?;
            let mut audited = Vec::new();
            let mut total = 0;
            for (dlq, source) in queues(stack, queue.as_deref())? {
                let dlq_url = url(&dlq).await?;
                let fallback = url(&source).await?;
                // A dead letter goes back where the consumer recorded it came from (a queue of
                // the same account and endpoint: its URL is the served queue's with its name);
                // one SQS moved itself goes to the queue this DLQ serves.
                let base = fallback.rsplit_once('/').map(|(base, _)| base.to_owned());
                let moved = dead_letters::redrive(
                    &port,
                    &dlq_url,
                    |m: &DeadMessage| match m.source_queue() {
                        Some(arn) => {
                            let name = arn.rsplit(':').next()?;
                            base.as_ref().map(|base| format!("{base}/{name}"))
                        }
                        None => Some(fallback.clone()),
                    },
                    &filter,
                    dead_letters::RedriveOptions::new(limit - total, dry_run),
                )
                .await?;
                for message in &moved.moved {
                    println!(
                        "{} {dlq} {} {} -> {source}",
                        if dry_run { "would move" } else { "moved" },
                        message.message_id,
                        message.code()
                    );
                }
                for id in &moved.unroutable {
                    println!("left {dlq} {id}: the queue it came from is unknown");
                }
                total += moved.moved.len();
                audited.extend(moved.moved.into_iter().map(|m| (dlq.clone(), m)));
            }
            let refs: Vec<(String, &DeadMessage)> =
                audited.iter().map(|(q, m)| (q.clone(), m)).collect();
            audit_moved(audit.as_mut(), "dlq.redrive", &refs).await?;
            if total == 0 {
                bail!("no dead letter matches {described}; nothing moved");
            }
            if dry_run {
                println!("dry run: {total} dead letter(s) would move; nothing moved");
            } else {
                println!("{total} dead letter(s) moved");
            }
        }
        DlqCommand::Purge {
            queue,
            older_than,
            dry_run,
        } => {
            let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
            let mut audit = audit_connection(args.database_url.as_deref(), dry_run).await?;
            let mut audited = Vec::new();
            let mut total = 0;
            for (dlq, _) in queues(stack, queue.as_deref())? {
                let dlq_url = url(&dlq).await?;
                let purged =
                    dead_letters::purge(&port, &dlq_url, older_than_ms, now_ms(), dry_run).await?;
                for message in &purged {
                    println!(
                        "{} {dlq} {} {} ({} old)",
                        if dry_run { "would delete" } else { "deleted" },
                        message.message_id,
                        message.code(),
                        age(now_ms() - message.sent_at_ms)
                    );
                }
                total += purged.len();
                audited.extend(purged.into_iter().map(|m| (dlq.clone(), m)));
            }
            let refs: Vec<(String, &DeadMessage)> =
                audited.iter().map(|(q, m)| (q.clone(), m)).collect();
            audit_moved(audit.as_mut(), "dlq.purge", &refs).await?;
            if total == 0 {
                bail!(
                    "no dead letter is older than {}; nothing deleted",
                    humantime::format_duration(older_than)
                );
            }
            if dry_run {
                println!("dry run: {total} dead letter(s) would be deleted; nothing deleted");
            } else {
                println!("{total} dead letter(s) deleted");
            }
        }
    }
    Ok(())
}
