//! One template function run locally: real processes of its binary under the Runtime API, one
//! invocation per process at a time (as a Lambda execution environment), more processes when
//! invocations overlap. A process that times out is killed; one that exits is replaced on the
//! next invocation. Each invocation prints Lambda's REPORT line.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::oneshot;

use super::output::Output;
use super::spec::FunctionSpec;
use crate::runtime::{FunctionProcess, InvokeError, Outcome, RuntimeApi};

/// How an invocation failed, as Lambda names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The handler answered on `/error`.
    Handler { error_type: String, body: Bytes },
    /// Killed at its Timeout.
    Timeout(f64),
    /// The process exited (or failed init) before answering.
    Exited { error_type: String },
    /// The binary could not be started.
    Spawn(String),
}

impl Failure {
    pub fn error_type(&self) -> &str {
        match self {
            Failure::Handler { error_type, .. } | Failure::Exited { error_type } => error_type,
            Failure::Timeout(_) => "Sandbox.Timedout",
            Failure::Spawn(_) => "Runtime.InvalidEntrypoint",
        }
    }

    /// The error payload Lambda returns to a synchronous caller.
    pub fn payload(&self) -> Bytes {
        match self {
            Failure::Handler { body, .. } => body.clone(),
            Failure::Timeout(secs) => Bytes::from(
                serde_json::json!({"errorType": "Sandbox.Timedout", "errorMessage": format!("Task timed out after {secs:.2} seconds")})
                    .to_string(),
            ),
            Failure::Exited { error_type } => Bytes::from(
                serde_json::json!({"errorType": error_type, "errorMessage": "RequestId: the runtime exited before answering"})
                    .to_string(),
            ),
            Failure::Spawn(reason) => Bytes::from(
                serde_json::json!({"errorType": "Runtime.InvalidEntrypoint", "errorMessage": reason})
                    .to_string(),
            ),
        }
    }
}

/// What one invocation did, for the REPORT line.
#[derive(Debug, Clone)]
pub struct Report {
    pub request_id: String,
    pub duration: Duration,
    pub memory_mb: u32,
    pub max_memory_used_mb: u64,
    pub init_duration: Option<Duration>,
}

impl Report {
    /// Lambda's line, field for field.
    pub fn line(&self, failure: Option<&Failure>) -> String {
        let ms = self.duration.as_secs_f64() * 1000.0;
        let billed = ms.ceil().max(1.0) as u64;
        let mut line = format!(
            "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            self.request_id, self.memory_mb, self.max_memory_used_mb
        );
        if let Some(init) = self.init_duration {
            line.push_str(&format!(
                "\tInit Duration: {:.2} ms",
                init.as_secs_f64() * 1000.0
            ));
        }
        match failure {
            Some(Failure::Timeout(_)) => line.push_str("\tStatus: timeout"),
            Some(f @ (Failure::Exited { .. } | Failure::Spawn(_))) => {
                line.push_str(&format!("\tStatus: error\tError Type: {}", f.error_type()));
            }
            _ => {}
        }
        line
    }
}

pub struct Invocation {
    pub result: Result<Bytes, Failure>,
    pub report: Report,
}

struct Instance {
    api: RuntimeApi,
    child: Child,
    spawned: Instant,
    /// Init has not been reported yet (the first invocation of this process).
    cold: bool,
}

pub struct LocalFunction {
    pub spec: FunctionSpec,
    binary: PathBuf,
    environment: Vec<(String, String)>,
    idle: Mutex<Vec<Instance>>,
    output: Arc<Output>,
    in_flight: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's peak resident memory (VmHWM), in MB: what Lambda reports as Max Memory Used.
fn max_memory_used_mb(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb.div_ceil(1024))
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static, function: String, output: Arc<Output>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            output.function_log(&function, &line);
        }
    });
}

impl LocalFunction {
    pub fn new(
        spec: FunctionSpec,
        binary: PathBuf,
        overrides: &[(String, String)],
        output: Arc<Output>,
    ) -> LocalFunction {
        let mut environment = spec.environment.clone();
        environment.extend(overrides.iter().cloned());
        LocalFunction {
            spec,
            binary,
            environment,
            idle: Mutex::new(Vec::new()),
            output,
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    async fn start_instance(&self) -> Result<Instance, Failure> {
        let api = RuntimeApi::start(&self.spec.id)
            .await
            .map_err(|e| Failure::Spawn(format!("runtime API: {e}")))?;
        let mut command = FunctionProcess::command(
            &self.binary,
            &api,
            &self.spec.id,
            self.spec.memory_mb,
            &self.environment,
        );
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| Failure::Spawn(format!("cannot start {}: {e}", self.binary.display())))?;
        if let Some(out) = child.stdout.take() {
            forward(out, self.spec.id.clone(), self.output.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(err, self.spec.id.clone(), self.output.clone());
        }
        Ok(Instance {
            api,
            child,
            spawned: Instant::now(),
            cold: true,
        })
    }

    /// Runs one invocation to its end and prints its REPORT line.
    pub async fn invoke(&self, payload: Bytes) -> Invocation {
        self.invoke_answering(payload, None).await
    }

    /// As [`LocalFunction::invoke`], and sends the function's answer to `answered` as soon as
    /// it posts it: a caller (the gateway) answers its client then, as API Gateway does, while
    /// the invocation lasts until the runtime asks for the next one (its post-response work
    /// counts in Duration and against the timeout, as on Lambda).
    pub async fn invoke_answering(
        &self,
        payload: Bytes,
        answered: Option<oneshot::Sender<Result<Bytes, Failure>>>,
    ) -> Invocation {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let invocation = self.invoke_inner(payload, answered).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let failure = invocation.result.as_ref().err();
        match failure {
            Some(Failure::Timeout(secs)) => self.output.report(
                &self.spec.id,
                &format!(
                    "{} Task timed out after {secs:.2} seconds",
                    invocation.report.request_id
                ),
            ),
            Some(Failure::Exited { error_type }) => self.output.report(
                &self.spec.id,
                &format!(
                    "RequestId: {} Error: Runtime exited before answering\n{error_type}",
                    invocation.report.request_id
                ),
            ),
            Some(Failure::Spawn(reason)) => self.output.report(&self.spec.id, reason),
            _ => {}
        }
        self.output
            .report(&self.spec.id, &invocation.report.line(failure));
        invocation
    }

    async fn invoke_inner(
        &self,
        payload: Bytes,
        answered: Option<oneshot::Sender<Result<Bytes, Failure>>>,
    ) -> Invocation {
        let idle = lock(&self.idle).pop();
        let mut instance = match idle {
            Some(instance) => instance,
            None => match self.start_instance().await {
                Ok(instance) => instance,
                Err(failure) => {
                    return Invocation {
                        result: Err(failure),
                        report: Report {
                            request_id: "-".into(),
                            duration: Duration::ZERO,
                            memory_mb: self.spec.memory_mb,
                            max_memory_used_mb: 0,
                            init_duration: None,
                        },
                    }
                }
            },
        };
        let queued = Instant::now();
        let timeout = self.spec.timeout;
        let request_id = instance.api.new_request_id();
        let (mut result, mut keep, polls) = tokio::select! {
            invoked = instance.api.invoke_as(request_id.clone(), payload, timeout) => match invoked {
                Ok((Outcome::Response(body), polls)) => (Ok(body), true, polls),
                Ok((Outcome::Error { error_type, body }, polls)) => (Err(Failure::Handler { error_type, body }), true, polls),
                Err(InvokeError::Timeout(secs)) => (Err(Failure::Timeout(secs)), false, 0),
                Err(InvokeError::Exited) => (Err(Failure::Exited { error_type: "Runtime.ExitError".into() }), false, 0),
            },
            _ = instance.child.wait() => {
                let error_type = instance
                    .api
                    .init_error()
                    .map_or_else(|| "Runtime.ExitError".to_owned(), |(t, _)| t);
                (Err(Failure::Exited { error_type }), false, 0)
            }
        };
        if let Some(answered) = answered {
            let _ = answered.send(result.clone());
        }
        let init_done = instance.api.first_poll();
        let init_duration = if instance.cold {
            init_done.map(|at| at.saturating_duration_since(instance.spawned))
        } else {
            None
        };
        // The invocation starts when the runtime is ready for it, not when it was queued.
        let started = init_done.map_or(queued, |at| at.max(queued));
        if keep {
            // It ends when the runtime asks for the next one: work after the answer counts.
            let left = timeout.saturating_sub(started.elapsed());
            let ended = tokio::select! {
                polled = instance.api.next_poll_after(polls, left) => polled,
                _ = instance.child.wait() => false,
            };
            if !ended {
                keep = false;
                if result.is_ok() {
                    result = Err(Failure::Timeout(timeout.as_secs_f64()));
                }
            }
        }
        let report = Report {
            request_id,
            duration: started.elapsed(),
            memory_mb: self.spec.memory_mb,
            max_memory_used_mb: max_memory_used_mb(instance.child.id()),
            init_duration,
        };
        instance.cold = false;
        if keep {
            lock(&self.idle).push(instance);
        } else {
            // A timed-out or dead environment is discarded; the next invocation starts afresh.
            let _ = instance.child.start_kill();
        }
        Invocation { result, report }
    }

    /// SIGTERM to every idle process (Lambda's shutdown), then a kill after `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        let instances: Vec<Instance> = lock(&self.idle).drain(..).collect();
        for mut instance in instances {
            if let Some(pid) = instance.child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(grace, instance.child.wait())
                .await
                .is_err()
            {
                let _ = instance.child.kill().await;
            }
        }
    }
}
