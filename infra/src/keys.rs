//! `inlet keys create|list|revoke`: a company's tenant API keys. The key is printed once, at
//! creation; the database keeps its id and a hash. Every change is audited.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use inlet_core::api_key::Scope;
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::keys::{self, KeyError};
use inlet_postgres::Connection;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Args)]
pub struct KeysArgs {
    /// The owner's (migrator's) connection.
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        #[arg(long)]
        company: String,
        /// Comma-separated: events:read, events:replay, payloads:read, privacy:export,
        /// privacy:delete, reports:read, admin (every tenant scope), operator (every tenant's
        /// dead letters, redrive, health: for the people who run Inlet).
        #[arg(long)]
        scopes: String,
        /// A duration from now (90d, 12h) or an RFC 3339 time; never, by default.
        #[arg(long)]
        expires: Option<String>,
        /// What the key is for (shown by `list`).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// A company's keys: id, name, scopes, created, expires, revoked, last used.
    List {
        #[arg(long)]
        company: String,
    },
    /// Revoke a key at once.
    Revoke {
        #[arg(long)]
        company: String,
        key_id: String,
    },
}

fn company_id(id: &str) -> anyhow::Result<CompanyId> {
    CompanyId::parse(id).map_err(|e| anyhow!("--company {id:?}: {e}"))
}

/// `--expires`: a duration from now, or an RFC 3339 time in the future; as RFC 3339.
fn expiry(text: &str, now: OffsetDateTime) -> anyhow::Result<String> {
    let at = match humantime::parse_duration(text) {
        Ok(duration) => time::Duration::try_from(duration)
            .ok()
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| anyhow!("--expires {text:?}: too far in the future"))?,
        Err(_) => OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            anyhow!("--expires {text:?}: a duration (90d, 12h) or an RFC 3339 time such as 2027-01-01T00:00:00Z")
        })?,
    };
    if at <= now {
        bail!("--expires {text:?}: that is not in the future");
    }
    let at = at.replace_nanosecond(0).unwrap_or(at);
    Ok(at.format(&Rfc3339)?)
}

async fn connect(url: Option<String>) -> anyhow::Result<Connection> {
    let url = url.ok_or_else(|| {
        anyhow!("DATABASE_ADMIN_URL is not set (the owner's connection); `. .local/env` sets it locally")
    })?;
    Ok(Connection::from(inlet_postgres::connect(&url).await?))
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create {
            company,
            scopes,
            expires,
            name,
        } => {
            let company = company_id(&company)?;
            let scopes = Scope::parse_list(&scopes).map_err(|e| anyhow!("--scopes: {e}"))?;
            let expires = expires
                .map(|text| expiry(&text, OffsetDateTime::now_utc()))
                .transpose()?;
            let mut connection = connect(args.database_url).await?;
            let actor = Actor::operator_from_env();
            let key = keys::create(
                &mut connection,
                &actor,
                &company,
                &name,
                &scopes,
                expires.as_deref(),
            )
            .await?;
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "key {} for {company} ({}; expires {}): shown once, store it now",
                key.key_id,
                scopes.join(", "),
                expires.as_deref().unwrap_or("never")
            );
            println!("{}", key.token);
        }
        KeysCommand::List { company } => {
            let company = company_id(&company)?;
            let mut connection = connect(args.database_url).await?;
            let listed = keys::list(&mut connection, &company).await?;
            if listed.is_empty() {
                println!("no keys for {company}; create one with `inlet keys create --company {company} --scopes events:read`");
            }
            for key in listed {
                let state = match (&key.revoked_at, &key.expires_at) {
                    (Some(at), _) => format!("revoked {at}"),
                    (None, Some(at)) => format!("expires {at}"),
                    (None, None) => "no expiry".to_owned(),
                };
                println!(
                    "{}  {:<20} {:<40} created {}  {state}  last used {}",
                    key.key_id,
                    if key.name.is_empty() { "-" } else { &key.name },
                    key.scopes.join(","),
                    key.created_at,
                    key.last_used_at.as_deref().unwrap_or("never"),
                );
            }
        }
        KeysCommand::Revoke { company, key_id } => {
            let company = company_id(&company)?;
            let mut connection = connect(args.database_url).await?;
            let actor = Actor::operator_from_env();
            match keys::revoke(&mut connection, &actor, &company, &key_id).await {
                Ok(true) => println!("key {key_id} revoked"),
                Ok(false) => println!("key {key_id} was already revoked"),
                Err(KeyError::UnknownKey(_)) => {
                    bail!("no key {key_id} for {company} (`inlet keys list --company {company}`)")
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_a_duration_or_a_future_time_and_refuses_the_past() {
        let now = OffsetDateTime::parse("2026-12-01T00:00:00Z", &Rfc3339).unwrap();
        assert_eq!(expiry("90d", now).unwrap(), "2027-03-01T00:00:00Z");
        assert_eq!(
            expiry("2027-01-01T00:00:00Z", now).unwrap(),
            "2027-01-01T00:00:00Z"
        );
        assert!(expiry("2020-01-01T00:00:00Z", now)
            .unwrap_err()
            .to_string()
            .contains("not in the future"));
        assert!(expiry("soon", now)
            .unwrap_err()
            .to_string()
            .contains("a duration"));
    }
}
