//! `inlet privacy export|erase`: a member's data, as the operator (the owner's connection, in the
//! member's company's tenant context). An export streams NDJSON to stdout; an erasure reaches
//! the database and the stack's dead-letter queues. Both are recorded and audited.

use std::io::Write;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use inlet_adapters::aws::{queue_url, SqsDeadLetters};
use inlet_core::crypto::KeyRing;
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::ops::dead_letters;
use inlet_domain::privacy::{self, PrivacyError};
use inlet_postgres::Connection;

use crate::dlq::Stack;
use crate::template::Template;

#[derive(Args)]
pub struct PrivacyArgs {
    #[command(flatten)]
    stack: Stack,
    /// The owner's (migrator's) connection.
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: PrivacyCommand,
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// Everything Inlet holds about a member, decrypted, as NDJSON on stdout.
    Export {
        #[arg(long)]
        company: String,
        /// The member's provider id (cus_..., user_...).
        #[arg(long)]
        member: String,
    },
    /// Erase a member everywhere: personal fields, the payloads of events naming them, their ids
    /// (replaced by pseudonyms), dead letters naming them. Aggregates stay.
    Erase {
        #[arg(long)]
        company: String,
        #[arg(long)]
        member: String,
    },
}

pub async fn run(args: PrivacyArgs) -> anyhow::Result<()> {
    let url = args.database_url.clone().ok_or_else(|| {
        anyhow!("DATABASE_ADMIN_URL is not set (the owner's connection); `. .local/env` sets it locally")
    })?;
    let keys = KeyRing::from_env()?;
    let actor = Actor::operator_from_env();
    let company_of = |id: &str| CompanyId::parse(id).map_err(|e| anyhow!("--company {id:?}: {e}"));
    match args.command {
        PrivacyCommand::Export { company, member } => {
            let company = company_of(&company)?;
            let mut connection = Connection::from(inlet_postgres::connect(&url).await?);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let counts =
                privacy::export(&mut connection, &keys, &actor, &company, &member, &mut out)
                    .await
                    .map_err(explain)?;
            out.flush()?;
            let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            eprintln!("exported: {}", summary.join(", "));
        }
        PrivacyCommand::Erase { company, member } => {
            let company = company_of(&company)?;
            let mut connection = Connection::from(inlet_postgres::connect(&url).await?);
            let erased = privacy::erase(&mut connection, &keys, &actor, &company, &member)
                .await
                .map_err(explain)?;
            if erased.needles.is_empty() {
                println!(
                    "nothing held for that member (already erased?); recorded as request {}",
                    erased.request_id
                );
                return Ok(());
            }
            let summary: Vec<String> = erased
                .counts
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            println!("erased in the database: {}", summary.join(", "));
            let deleted = erase_dead_letters(&args.stack, &erased.needles).await?;
            println!("dead letters naming the member deleted: {deleted}");
            println!("recorded as privacy request {}", erased.request_id);
        }
    }
    Ok(())
}

fn explain(error: PrivacyError) -> anyhow::Error {
    match error {
        PrivacyError::NotFound(_) => anyhow!("no such member in that company; nothing exported"),
        other => other.into(),
    }
}

/// Deletes every dead letter of the stack's DLQs that names the member.
async fn erase_dead_letters(stack: &Stack, needles: &[String]) -> anyhow::Result<usize> {
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let port = SqsDeadLetters::new(sqs.clone());
    let template = Template::load(&stack.template)?;
    let mut deleted = 0;
    for (dlq, _) in template.dead_letter_queues() {
        let Ok(url) = queue_url(&sqs, &stack.name(&dlq)).await else {
            bail!("the queue {} was not found: the member is erased from the database, but its dead letters were not searched; run the erasure again with the right --stack / --resource-prefix", stack.name(&dlq));
        };
        deleted += dead_letters::delete_matching(
            &port,
            &url,
            |m| dead_letters::mentions(m, needles),
            false,
        )
        .await?
        .len();
    }
    Ok(deleted)
}
