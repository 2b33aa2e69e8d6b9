//! `inlet audit verify`: recomputes the audit log's hash chains and names the first broken link.

use anyhow::bail;
use clap::{Args, Subcommand};
use inlet_core::CompanyId;
use inlet_domain::audit;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every chain (or one company's) from the stored rows; exits 1 naming the first
    /// broken link of each broken chain.
    Verify {
        /// Only this company's chain.
        #[arg(long)]
        company: Option<String>,
        /// The owner's connection: verification reads every tenant's rows.
        #[arg(long, env = "DATABASE_ADMIN_URL", hide_env_values = true)]
        database_url: String,
    },
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::Verify {
            company,
            database_url,
        } => {
            let company = match company.as_deref().map(CompanyId::parse) {
                None => None,
                Some(Ok(id)) => Some(id),
                Some(Err(_)) => bail!("--company is not a company id ([A-Za-z0-9_-], 1-64)"),
            };
            let client = inlet_postgres::connect(&database_url).await?;
            let report = audit::verify(&client, company.as_ref()).await?;
            for broken in &report.broken {
                println!("BROKEN {broken}");
            }
            if report.broken.is_empty() {
                println!(
                    "audit log verified: {} chain(s), {} row(s), every link holds",
                    report.chains, report.rows
                );
                Ok(())
            } else {
                bail!(
                    "audit log: {} of {} chain(s) broken",
                    report.broken.len(),
                    report.chains
                )
            }
        }
    }
}
