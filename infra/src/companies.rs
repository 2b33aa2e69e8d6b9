//! `inlet companies`: onboard a tenant, list, show and change them. Run as the database owner
//! (`DATABASE_ADMIN_URL`); every statement is in the company's own tenant context.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::companies::{self, check_name, Settings};
use inlet_postgres::Connection;
use serde_json::Value;

#[derive(Args)]
pub struct CompaniesArgs {
    /// The owner's (migrator's) connection.
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: CompaniesCommand,
}

#[derive(Subcommand)]
enum CompaniesCommand {
    /// Create a company (a tenant): the first step before adding its sources.
    Add {
        /// 1-128 characters of A-Z a-z 0-9 _ - . : (a provider's account id fits).
        id: String,
        #[arg(long)]
        name: String,
        /// Settings as a JSON object, e.g. '{"recovery_url":"https://acme.example/billing"}'.
        #[arg(long)]
        settings_json: Option<String>,
        /// Succeed, changing nothing, when the company already exists.
        #[arg(long)]
        exists_ok: bool,
    },
    /// List companies.
    List,
    /// Show one company and its settings.
    Show { id: String },
    /// Change a company's name or settings (keys given are set; a key set to null is removed).
    Set {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        settings_json: Option<String>,
    },
    /// Offboard a company: its sources, then every row it has (the audit log keeps what records
    /// it). Without --yes, says what it would delete.
    Delete {
        id: String,
        #[arg(long)]
        yes: bool,
        /// The sources table (DynamoDB).
        #[arg(long, env = "SOURCES_TABLE", default_value = "SourcesTable")]
        sources_table: String,
    },
}

fn company_id(id: &str) -> anyhow::Result<CompanyId> {
    CompanyId::parse(id).map_err(|e| anyhow!("company id {id:?}: {e}"))
}

fn settings_json(text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("--settings-json is not JSON: {e}"))
}

async fn connect(url: Option<String>) -> anyhow::Result<Connection> {
    let url = url.ok_or_else(|| {
        anyhow!("DATABASE_ADMIN_URL is not set (the owner's connection); `. .local/env` sets it locally")
    })?;
    Ok(Connection::from(inlet_postgres::connect(&url).await?))
}

/// Offboarding: the company's fixed-tenant sources first (intake stops taking its events), then
/// its rows.
async fn delete(
    database_url: Option<String>,
    id: &str,
    yes: bool,
    sources_table: &str,
) -> anyhow::Result<()> {
    let company = company_id(id)?;
    let mut connection = connect(database_url).await?;
    if !companies::exists(&mut connection, &company).await? {
        bail!("company {company} does not exist");
    }
    let config = inlet_adapters::aws::sdk_config().await;
    let store = inlet_adapters::aws::DynamoSources::new(
        aws_sdk_dynamodb::Client::new(&config),
        sources_table,
        inlet_core::crypto::KeyRing::from_env()?,
    );
    let sources: Vec<String> = store
        .list()
        .await?
        .into_iter()
        .filter(
            |s| matches!(&s.tenant, inlet_webhooks::intake::TenantRule::Fixed(c) if c == &company),
        )
        .map(|s| s.source_id)
        .collect();
    if !yes {
        println!(
            "would delete company {company}: its {} source(s) ({}) and every row it has; run again with --yes",
            sources.len(),
            sources.join(", ")
        );
        return Ok(());
    }
    for source in &sources {
        store.delete(source).await?;
        println!("deleted source {source}");
    }
    let deleted =
        inlet_domain::offboarding::offboard(&mut connection, &Actor::operator_from_env(), &company)
            .await?
            .ok_or_else(|| anyhow!("company {company} was deleted meanwhile"))?;
    let summary: Vec<String> = deleted.iter().map(|(t, n)| format!("{n} {t}")).collect();
    println!("company {company} deleted: {}", summary.join(", "));
    Ok(())
}

pub async fn run(args: CompaniesArgs) -> anyhow::Result<()> {
    match args.command {
        CompaniesCommand::Delete {
            id,
            yes,
            sources_table,
        } => delete(args.database_url, &id, yes, &sources_table).await?,
        CompaniesCommand::Add {
            id,
            name,
            settings_json: settings,
            exists_ok,
        } => {
            // Everything is checked before the database is touched.
            let company = company_id(&id)?;
            let name = check_name(&name)?.to_owned();
            let settings = match settings {
                Some(text) => Settings::from_json(&settings_json(&text)?)?,
                None => Settings::default(),
            };
            let mut connection = connect(args.database_url).await?;
            if companies::add(
                &mut connection,
                &Actor::operator_from_env(),
                &company,
                &name,
                &settings,
            )
            .await?
            {
                println!("company {company} added");
            } else if exists_ok {
                println!("company {company} exists");
            } else {
                bail!("company {company} already exists; change it with `inlet companies set {company}`");
            }
        }
        CompaniesCommand::List => {
            let url = args
                .database_url
                .ok_or_else(|| anyhow!("DATABASE_ADMIN_URL is not set"))?;
            let client = inlet_postgres::connect(&url).await?;
            let rows = client
                .query(
                    "SELECT company_id, name, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                       FROM companies ORDER BY company_id",
                    &[],
                )
                .await?;
            if rows.is_empty() {
                println!("no companies; add one with `inlet companies add <id> --name ...`");
            }
            for row in rows {
                let (id, name, created): (String, String, String) =
                    (row.get(0), row.get(1), row.get(2));
                println!("{id:<32} {created}  {name}");
            }
        }
        CompaniesCommand::Show { id } => {
            let company = company_id(&id)?;
            let mut connection = connect(args.database_url).await?;
            let found = companies::get(&mut connection, &company)
                .await?
                .ok_or_else(|| anyhow!("no company {company}; see `inlet companies list`"))?;
            println!("company   {}", found.id);
            println!("name      {}", found.name);
            println!("created   {}", found.created_at);
            println!(
                "settings  {}",
                serde_json::to_string_pretty(&found.settings)?
            );
        }
        CompaniesCommand::Set {
            id,
            name,
            settings_json: settings,
        } => {
            let company = company_id(&id)?;
            let name = name.as_deref().map(check_name).transpose()?;
            let changes = settings.as_deref().map(settings_json).transpose()?;
            if name.is_none() && changes.is_none() {
                bail!("nothing to change: give --name and/or --settings-json");
            }
            let mut connection = connect(args.database_url).await?;
            let current = companies::get(&mut connection, &company)
                .await?
                .ok_or_else(|| anyhow!("no company {company}; add it with `inlet companies add {company} --name ...`"))?;
            let settings = match &changes {
                // Stored settings are read leniently so a key a newer release removed can be
                // cleared by setting it to null.
                Some(changes) => Some(
                    serde_json::from_value::<Settings>(current.settings.clone())
                        .unwrap_or_default()
                        .merged(changes)?,
                ),
                None => None,
            };
            companies::update(
                &mut connection,
                &Actor::operator_from_env(),
                &company,
                name,
                settings.as_ref(),
            )
            .await?;
            println!("company {company} updated");
        }
    }
    Ok(())
}
