//! `inlet local` and its subcommands: the arguments and what each does.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::output::Output;

#[derive(Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    command: Option<LocalCommand>,
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Args)]
struct UpArgs {
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// The gateway's port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Run release binaries, as deployed.
    #[arg(long)]
    release: bool,
    /// Run the binaries already built in this directory; build nothing.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Hide function logs (REPORT lines and errors stay).
    #[arg(long)]
    quiet: bool,
    /// Show one function's lines only (its logical id).
    #[arg(long)]
    function: Option<String>,
    /// Put before every queue and table name, to run beside another local stack.
    #[arg(long, default_value = "")]
    resource_prefix: String,
}

#[derive(Subcommand)]
enum LocalCommand {
    /// Invoke one function of the running stack now with an event file.
    Invoke {
        /// The function's logical id, e.g. ProcessEventsFunction.
        function: String,
        #[arg(long)]
        event: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
    },
    /// Fire one function's schedule now on the running stack.
    Trigger {
        function: String,
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
    },
    /// Create template.yaml's tables and queues in the emulator (idempotent).
    Resources {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
    },
}

pub async fn command(args: LocalArgs) -> anyhow::Result<()> {
    match args.command {
        None => {
            let up = args.up;
            super::run(super::Options {
                template: up.template,
                port: up.port,
                release: up.release,
                bin_dir: up.bin_dir,
                resource_prefix: up.resource_prefix,
                output: Output {
                    quiet: up.quiet,
                    only: up.function,
                },
            })
            .await
        }
        Some(LocalCommand::Invoke {
            function,
            event,
            url,
        }) => {
            let body = std::fs::read(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            control(&url, "invoke", &function, body).await
        }
        Some(LocalCommand::Trigger { function, url }) => {
            control(&url, "trigger", &function, Vec::new()).await
        }
        Some(LocalCommand::Resources { template }) => {
            let template = crate::template::Template::load(&template)?;
            let config = inlet_adapters::aws::sdk_config().await;
            let created = crate::resources::create_all(&template, &config).await?;
            for resource in created {
                println!(
                    "{:<6} {:<20} {}",
                    resource.kind, resource.logical_id, resource.address
                );
            }
            Ok(())
        }
    }
}

/// `inlet local invoke|trigger`: asks the running stack, prints the result and the REPORT line.
async fn control(url: &str, action: &str, function: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let endpoint = format!("{}/_inlet/{action}/{function}", url.trim_end_matches('/'));
    let answer = crate::http::post(&endpoint, &[], bytes::Bytes::from(body)).await?;
    if answer.status != 200 {
        bail!("{}", String::from_utf8_lossy(&answer.body));
    }
    let result: serde_json::Value = serde_json::from_slice(&answer.body)?;
    println!("{}", serde_json::to_string_pretty(&result["payload"])?);
    println!("{}", result["report"].as_str().unwrap_or_default());
    if let Some(error) = result["functionError"].as_str() {
        bail!("{function} failed: {error}");
    }
    Ok(())
}
