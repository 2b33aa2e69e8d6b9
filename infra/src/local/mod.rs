//! `inlet local`: the whole system from template.yaml on this machine, without Docker. Real
//! function binaries under a Runtime API emulator, an HTTP gateway for HttpApi routes, SQS event
//! source mappings and EventBridge schedules, against the local emulator and Postgres.

pub mod cli;
pub mod function;
pub mod gateway;
pub mod output;
pub mod schedule;
pub mod spec;
pub mod sqs;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::template::Template;
use function::LocalFunction;
use gateway::Route;
use output::Output;
use spec::{FunctionSpec, Locals, ScheduleSource};

#[derive(Debug, Clone)]
pub struct Options {
    pub template: PathBuf,
    /// 127.0.0.1:port for the gateway; 0 picks a free port.
    pub port: u16,
    /// Build release binaries (what is deployed) instead of debug ones.
    pub release: bool,
    /// Use binaries already built in this directory instead of building.
    pub bin_dir: Option<PathBuf>,
    /// Put before every queue and table name (tests run a stack of their own beside `make run`).
    pub resource_prefix: String,
    pub output: Output,
}

pub struct Stack {
    pub functions: Vec<Arc<LocalFunction>>,
    pub routes: Vec<Route>,
    ids: AtomicU64,
}

impl Stack {
    pub fn function(&self, id: &str) -> Option<&Arc<LocalFunction>> {
        self.functions.iter().find(|f| f.spec.id == id)
    }

    pub fn next_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{:012x}-{n:06x}", now & 0xffff_ffff_ffff)
    }

    /// What a schedule delivers: ScheduleV2's Input as it is, else EventBridge's scheduled event.
    pub fn schedule_payload(&self, function: &LocalFunction, schedule: &ScheduleSource) -> Bytes {
        match &schedule.input {
            Some(input) => Bytes::from(input.clone()),
            None => Bytes::from(
                schedule::scheduled_event(
                    &format!("{}{}", function.spec.id, schedule.name),
                    SystemTime::now(),
                    &self.next_id(),
                )
                .to_string(),
            ),
        }
    }
}

/// The workspace's target directory for the chosen profile.
fn target_dir(root: &std::path::Path, release: bool) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    base.join(if release { "release" } else { "debug" })
}

fn build(root: &std::path::Path, release: bool, output: &Output) -> anyhow::Result<PathBuf> {
    output.say(&format!(
        "building the function binaries ({})",
        if release { "release" } else { "debug" }
    ));
    let mut command =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The same selection `make test` builds: no feature re-unification, no rebuild.
    command
        .current_dir(root)
        .args(["build", "--quiet", "--workspace", "--bins"]);
    if release {
        command.arg("--release");
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the function binaries failed");
    }
    Ok(target_dir(root, release))
}

/// Values the template takes from Secrets Manager when deployed (by the parameter naming the
/// secret), and the variable of this environment (`.local/env`) that holds each locally.
pub const LOCAL_SECRETS: [(&str, &str); 4] = [
    ("DatabaseUrlSecretArn", "DATABASE_URL"),
    ("SchedulerDatabaseUrlSecretArn", "SCHEDULER_DATABASE_URL"),
    ("OpsDatabaseUrlSecretArn", "OPS_DATABASE_URL"),
    ("InletKeysSecretArn", "INLET_KEYS"),
];

/// Reads the template and prepares every function; builds unless given a binary directory.
pub fn prepare(options: &Options, gateway_url: &str) -> anyhow::Result<(Stack, Locals)> {
    let mut template = Template::load(&options.template)?;
    template.prefix.clone_from(&options.resource_prefix);
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .context("AWS_ENDPOINT_URL is not set: run `make services && . .local/env` first")?;
    let locals = Locals {
        endpoint: endpoint.clone(),
        secrets: LOCAL_SECRETS
            .iter()
            .filter_map(|(parameter, variable)| {
                std::env::var(variable)
                    .ok()
                    .map(|v| ((*parameter).to_owned(), v))
            })
            .collect(),
        parameters: BTreeMap::new(),
        gateway_url: gateway_url.to_owned(),
    };
    let specs: Vec<FunctionSpec> = spec::functions(&template, &locals)?;
    let root = options
        .template
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let bin_dir = match &options.bin_dir {
        Some(dir) => dir.clone(),
        None => build(&root, options.release, &options.output)?,
    };
    // What the deployed functions get from Lambda and IAM, pointed at the emulator.
    let mut overrides = vec![("AWS_ENDPOINT_URL".to_owned(), endpoint)];
    for name in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        let value = std::env::var(name).unwrap_or_else(|_| match name {
            "AWS_REGION" | "AWS_DEFAULT_REGION" => crate::template::LOCAL_REGION.to_owned(),
            _ => "test".to_owned(),
        });
        overrides.push((name.to_owned(), value));
    }
    let output = Arc::new(options.output.clone());
    let mut functions = Vec::new();
    let mut routes = Vec::new();
    for spec in specs {
        let binary = bin_dir.join(&spec.binary);
        if !binary.is_file() {
            bail!(
                "{}: binary {} not found (build it with `cargo build --workspace --bins`)",
                spec.id,
                binary.display()
            );
        }
        for route in &spec.http {
            routes.push(Route {
                method: route.method.clone(),
                path: route.path.clone(),
                function: functions.len(),
            });
        }
        functions.push(Arc::new(LocalFunction::new(
            spec,
            binary,
            &overrides,
            output.clone(),
        )));
    }
    // API Gateway tries the most specific route first, whatever the template's order.
    routes.sort_by_key(Route::precedence);
    Ok((
        Stack {
            functions,
            routes,
            ids: AtomicU64::new(0),
        },
        locals,
    ))
}

async fn serve_gateway(stack: Arc<Stack>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, remote)) = accepted else {
            continue;
        };
        // Answers go out at once: with Nagle's algorithm on, a response written in two parts
        // waits for the client's delayed ACK (40 ms on Linux).
        let _ = stream.set_nodelay(true);
        let stack = stack.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                gateway::handle(stack.clone(), remote, request)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn run_schedule(
    stack: Arc<Stack>,
    function: Arc<LocalFunction>,
    source: ScheduleSource,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(parsed) = schedule::Schedule::parse(&source.expression) else {
        return;
    };
    let mut last = SystemTime::now();
    loop {
        let Some(next) = parsed.next_after(last) else {
            return;
        };
        let wait = next
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        last = next;
        let payload = stack.schedule_payload(&function, &source);
        // EventBridge invokes asynchronously: a slow run does not delay the next firing.
        let function = function.clone();
        tokio::spawn(async move {
            function.invoke(payload).await;
        });
    }
}

/// Runs the stack until Ctrl-C or SIGTERM, then shuts it down as Lambda would.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} (use --port)", options.port))?;
    let address = listener.local_addr()?;
    let (stack, locals) = prepare(&options, &format!("http://{address}"))?;
    let stack = Arc::new(stack);
    let output = Arc::new(options.output.clone());
    let config = inlet_adapters::aws::sdk_config().await;
    let mut template = Template::load(&options.template)?;
    template.prefix.clone_from(&options.resource_prefix);
    crate::resources::create_all(&template, &config).await?;
    // Long polls outlast the SDK's default operation timeout.
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(30))
                    .operation_attempt_timeout(Duration::from_secs(25))
                    .build(),
            )
            .build(),
    );
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve_gateway(
        stack.clone(),
        listener,
        stop.clone(),
    )));
    for route in &stack.routes {
        output.say(&format!(
            "{} http://{address}{} -> {}",
            route.method, route.path, stack.functions[route.function].spec.id
        ));
    }
    for function in &stack.functions {
        for source in &function.spec.sqs {
            let url = spec::queue_url(&locals, &source.queue);
            output.say(&format!(
                "SQS {} -> {} (batch {}, window {}s, concurrency {})",
                source.queue,
                function.spec.id,
                source.batch_size,
                source.window.as_secs(),
                source.max_concurrency
            ));
            for _ in 0..source.max_concurrency {
                tasks.push(tokio::spawn(sqs::poll(
                    function.clone(),
                    source.clone(),
                    url.clone(),
                    sqs.clone(),
                    output.clone(),
                    stop.clone(),
                )));
            }
        }
        for source in function.spec.schedules.iter().filter(|s| s.enabled) {
            output.say(&format!(
                "schedule {} -> {}",
                source.expression, function.spec.id
            ));
            tasks.push(tokio::spawn(run_schedule(
                stack.clone(),
                function.clone(),
                source.clone(),
                stop.clone(),
            )));
        }
    }
    output.say(&format!(
        "ready: gateway on http://{address} (Ctrl-C stops)"
    ));
    shutdown_signal().await;
    output.say("stopping: no new work; in-flight invocations finish or time out");
    let _ = stop_tx.send(true);
    let longest = stack
        .functions
        .iter()
        .map(|f| f.spec.timeout)
        .max()
        .unwrap_or(Duration::from_secs(3));
    let deadline = tokio::time::Instant::now() + longest + Duration::from_secs(1);
    for task in tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    for function in &stack.functions {
        function.shutdown(Duration::from_secs(2)).await;
    }
    output.say("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated => {}
    }
}
