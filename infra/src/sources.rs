//! `inlet sources`: add, list, show, rotate, disable, enable, seed-demo.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use inlet_adapters::aws::DynamoSources;
use inlet_core::clock::now_ms;
use inlet_core::config::Deployment;
use inlet_core::crypto::{random_bytes, KeyRing};
use inlet_core::CompanyId;
use inlet_webhooks::intake::{
    demo, RateLimit, Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE_SECS,
};
use inlet_webhooks::providers::{Provider, SigningSecret};

#[derive(Args)]
pub struct SourcesArgs {
    /// The sources table.
    #[arg(
        long,
        env = "SOURCES_TABLE",
        global = true,
        default_value = "SourcesTable"
    )]
    table: String,
    /// Base URL of the webhooks API, for the URL to give the provider.
    #[arg(
        long,
        env = "INLET_API_URL",
        global = true,
        default_value = "http://127.0.0.1:3000"
    )]
    base_url: String,
    /// The owner's database connection: a source's company must exist.
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: SourcesCommand,
}

/// Refuses a company that does not exist, naming the command that creates it.
async fn require_company(database_url: Option<&str>, company: &CompanyId) -> anyhow::Result<()> {
    let url = database_url.ok_or_else(|| {
        anyhow!(
            "DATABASE_ADMIN_URL is not set: it is needed to check that company {company} exists"
        )
    })?;
    let mut connection = inlet_postgres::Connection::from(inlet_postgres::connect(url).await?);
    if !inlet_domain::companies::exists(&mut connection, company).await? {
        bail!(
            "company {company} does not exist; create it first with `inlet companies add {company} --name \"...\"`"
        );
    }
    Ok(())
}

#[derive(Subcommand)]
enum SourcesCommand {
    /// Add a source and print the URL to give the provider (and a generated secret, once).
    Add(AddArgs),
    /// List sources (never their secrets).
    List,
    /// Show one source (never its secrets).
    Show { source_id: String },
    /// Add a new secret; the current ones stay valid for the overlap, then stop verifying.
    Rotate {
        source_id: String,
        /// The provider's new secret; generated when absent.
        #[arg(long, env = "INLET_SOURCE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[arg(long, default_value_t = 24)]
        overlap_hours: u32,
    },
    /// Stop accepting webhooks for a source (404, as if it did not exist).
    Disable { source_id: String },
    /// Accept webhooks for a disabled source again.
    Enable { source_id: String },
    /// Create the demo sources of the local stack (one per provider). Refused in production.
    SeedDemo,
}

#[derive(Args)]
struct AddArgs {
    #[arg(long, value_parser = parse_provider)]
    provider: Provider,
    /// Every event belongs to this company.
    #[arg(
        long,
        conflicts_with = "tenant_pointer",
        required_unless_present = "tenant_pointer"
    )]
    company: Option<String>,
    /// A JSON pointer to the company id in each payload, e.g. /account (Stripe Connect).
    #[arg(long)]
    tenant_pointer: Option<String>,
    /// Source id (1-64 of A-Z a-z 0-9 _ -); generated when absent.
    #[arg(long)]
    id: Option<String>,
    /// The signing secret the provider gave you; generated when absent.
    #[arg(long, env = "INLET_SOURCE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    #[arg(long, default_value_t = DEFAULT_TOLERANCE_SECS)]
    tolerance_secs: i64,
    /// REQUESTS/SECONDS, e.g. 100/60.
    #[arg(long, value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimit>,
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

fn parse_provider(text: &str) -> Result<Provider, String> {
    Provider::parse(text).ok_or_else(|| {
        let names: Vec<_> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown provider; one of {}", names.join(", "))
    })
}

fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (requests, window) = text
        .split_once('/')
        .ok_or("expected REQUESTS/SECONDS, e.g. 100/60")?;
    let requests: u32 = requests
        .parse()
        .map_err(|_| "REQUESTS must be a whole number")?;
    let window_secs: u32 = window
        .parse()
        .map_err(|_| "SECONDS must be a whole number")?;
    if requests == 0 || window_secs == 0 {
        return Err("both numbers must be above 0".into());
    }
    Ok(RateLimit {
        requests,
        window_secs,
    })
}

pub async fn run(args: SourcesArgs) -> anyhow::Result<()> {
    let keys = KeyRing::from_env()?;
    let config = inlet_adapters::aws::sdk_config().await;
    let store = DynamoSources::new(aws_sdk_dynamodb::Client::new(&config), &args.table, keys);
    let url = |source: &Source| {
        format!(
            "{}/webhooks/{}/{}",
            args.base_url.trim_end_matches('/'),
            source.provider,
            source.source_id
        )
    };
    match args.command {
        SourcesCommand::Add(add) => {
            let source_id = match add.id {
                Some(id) if inlet_core::SourceId::is_valid(&id) => id,
                Some(_) => bail!("--id must be 1-64 characters of A-Z a-z 0-9 _ -"),
                None => format!("src_{}", hex::encode(random_bytes(6))),
            };
            if store.fetch(&source_id).await?.is_some() {
                bail!("source {source_id} already exists; use `inlet sources rotate {source_id}` to change its secret");
            }
            let tenant = match (add.company, add.tenant_pointer) {
                (Some(company), _) => TenantRule::Fixed(
                    CompanyId::parse(&company).map_err(|e| anyhow!("--company: {e}"))?,
                ),
                (None, Some(pointer))
                    if inlet_webhooks::intake::json_pointer::is_valid(&pointer) =>
                {
                    TenantRule::Pointer(pointer)
                }
                (None, Some(_)) => {
                    bail!("--tenant-pointer must be a JSON pointer such as /account")
                }
                (None, None) => bail!("give --company or --tenant-pointer"),
            };
            let generated = add.secret.is_none();
            let secret = add.secret.unwrap_or_else(|| add.provider.generate_secret());
            add.provider
                .check_secret(&secret)
                .map_err(|e| anyhow!("--secret: {e}"))?;
            // A payload-named tenant may not exist yet: its events dead-letter as
            // unknown_tenant and can be redriven once it does.
            if let TenantRule::Fixed(company) = &tenant {
                require_company(args.database_url.as_deref(), company).await?;
            }
            let source = Source {
                source_id,
                provider: add.provider,
                tenant,
                secrets: vec![SourceSecret {
                    secret: SigningSecret::new(secret),
                    not_after_ms: None,
                }],
                tolerance_secs: add.tolerance_secs,
                rate_limit: add.rate_limit,
                body_limit: add.body_limit,
                enabled: true,
            };
            store.put(&source).await?;
            println!("source {} added for {}", source.source_id, source.provider);
            println!("URL to give the provider: {}", url(&source));
            if generated {
                println!(
                    "signing secret (shown once; give it to the provider): {}",
                    source.secrets[0].secret.expose()
                );
            }
        }
        SourcesCommand::List => {
            let sources = store.list().await?;
            if sources.is_empty() {
                println!(
                    "no sources; add one with `inlet sources add --provider stripe --company <id>`"
                );
            }
            for source in sources {
                println!(
                    "{:<24} {:<9} {:<8} tenant {:<28} secrets {}  {}",
                    source.source_id,
                    source.provider,
                    if source.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    describe_tenant(&source.tenant),
                    source.active_secrets(now_ms()).count(),
                    url(&source)
                );
            }
        }
        SourcesCommand::Show { source_id } => {
            let source = fetch(&store, &source_id).await?;
            println!("source        {}", source.source_id);
            println!("provider      {}", source.provider);
            println!("enabled       {}", source.enabled);
            println!("tenant        {}", describe_tenant(&source.tenant));
            println!("url           {}", url(&source));
            println!("tolerance     {} s", source.tolerance_secs);
            println!("body limit    {} bytes", source.body_limit);
            match source.rate_limit {
                Some(limit) => println!(
                    "rate limit    {} per {} s",
                    limit.requests, limit.window_secs
                ),
                None => println!("rate limit    none"),
            }
            let now = now_ms();
            for (n, secret) in source.secrets.iter().enumerate() {
                let state = match secret.not_after_ms {
                    None => "active".to_owned(),
                    Some(t) if t > now => format!(
                        "active until {}",
                        inlet_core::clock::rfc3339_ms(t).unwrap_or_default()
                    ),
                    Some(_) => "expired".to_owned(),
                };
                println!("secret {}      {state}", n + 1);
            }
        }
        SourcesCommand::Rotate {
            source_id,
            secret,
            overlap_hours,
        } => {
            let mut source = fetch(&store, &source_id).await?;
            let now = now_ms();
            let generated = secret.is_none();
            let secret = secret.unwrap_or_else(|| source.provider.generate_secret());
            source
                .provider
                .check_secret(&secret)
                .map_err(|e| anyhow!("--secret: {e}"))?;
            let until = source.rotate(
                SigningSecret::new(secret),
                now,
                i64::from(overlap_hours) * 3_600_000,
            );
            store.put(&source).await?;
            println!(
                "source {source_id}: new secret added; previous secrets verify until {}",
                inlet_core::clock::rfc3339_ms(until).unwrap_or_default()
            );
            if generated {
                println!(
                    "new signing secret (shown once): {}",
                    source
                        .secrets
                        .last()
                        .map(|s| s.secret.expose())
                        .unwrap_or_default()
                );
            }
        }
        SourcesCommand::Disable { source_id } => set_enabled(&store, &source_id, false).await?,
        SourcesCommand::Enable { source_id } => set_enabled(&store, &source_id, true).await?,
        SourcesCommand::SeedDemo => {
            if Deployment::current().is_production() {
                bail!("refusing to create demo sources with INLET_ENV=production");
            }
            let company = CompanyId::parse(demo::DEMO_COMPANY)?;
            require_company(args.database_url.as_deref(), &company).await?;
            for source in demo::demo_sources() {
                store.put(&source).await.context("seeding demo sources")?;
                // Fixed, local-only demo secrets (never valid in production): shown so a
                // provider's CLI or a hand-written sender can sign for these sources.
                let secret = source.secrets.first().map_or("", |s| s.secret.expose());
                println!(
                    "{:<14} {:<56} secret {secret}",
                    source.source_id,
                    url(&source)
                );
            }
        }
    }
    Ok(())
}

async fn fetch(store: &DynamoSources, source_id: &str) -> anyhow::Result<Source> {
    store
        .fetch(source_id)
        .await?
        .ok_or_else(|| anyhow!("no source {source_id}; see `inlet sources list`"))
}

async fn set_enabled(store: &DynamoSources, source_id: &str, enabled: bool) -> anyhow::Result<()> {
    let mut source = fetch(store, source_id).await?;
    source.enabled = enabled;
    store.put(&source).await?;
    println!(
        "source {source_id} {}",
        if enabled {
            "enabled"
        } else {
            "disabled: its URL now answers 404"
        }
    );
    Ok(())
}

fn describe_tenant(tenant: &TenantRule) -> String {
    match tenant {
        TenantRule::Fixed(company) => format!("company {company}"),
        TenantRule::Pointer(pointer) => format!("from payload {pointer}"),
    }
}
