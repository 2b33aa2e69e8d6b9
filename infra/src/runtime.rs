//! A Lambda Runtime API (version 2018-06-01) for function binaries running as local processes:
//! the same protocol AWS Lambda speaks to a `provided.al2023` bootstrap, so the binaries run
//! here exactly as they are deployed.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler's response payload.
    Response(Bytes),
    /// The handler reported an error (`/invocation/{id}/error`).
    Error { error_type: String, body: Bytes },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvokeError {
    #[error("Task timed out after {0:.2} seconds")]
    Timeout(f64),
    #[error("the function process stopped before answering (Runtime.ExitError)")]
    Exited,
}

struct Pending {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
    trace_id: String,
    reply: oneshot::Sender<Answer>,
}

/// An outcome, and how many times the runtime had asked for work when it answered: the end of
/// the invocation (as Lambda bills it) is its next `/invocation/next` after that.
type Answer = (Outcome, u64);

struct Shared {
    function_arn: String,
    pending: Mutex<VecDeque<Pending>>,
    arrived: Notify,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<(String, Bytes)>>,
    counter: AtomicU64,
    /// When the runtime first asked for work: the end of its init phase.
    first_poll: Mutex<Option<Instant>>,
    /// How many times the runtime has called `/invocation/next`, and a signal at each call.
    polls: AtomicU64,
    polled: Notify,
}

/// One function's Runtime API endpoint.
pub struct RuntimeApi {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub async fn start(function_name: &str) -> std::io::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            pending: Mutex::default(),
            arrived: Notify::new(),
            in_flight: Mutex::default(),
            init_error: Mutex::default(),
            counter: AtomicU64::new(0),
            first_poll: Mutex::default(),
            polls: AtomicU64::new(0),
            polled: Notify::new(),
        });
        let server_shared = shared.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // No Nagle delay on the runtime's long polls and posts (see serve_gateway).
                let _ = stream.set_nodelay(true);
                let shared = server_shared.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request| route(shared.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            address,
            shared,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// When the runtime first called `/invocation/next` (its init phase ended), if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        *lock(&self.shared.first_poll)
    }

    /// Waits until the runtime asks for work again after its answer (`polls` is the count the
    /// answer carried): after posting a response a function may still work (Lambda bills and
    /// times that too) until it calls `/invocation/next`. False if `limit` passed first.
    pub async fn next_poll_after(&self, polls: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let polled = self.shared.polled.notified();
            if self.shared.polls.load(Ordering::SeqCst) > polls {
                return true;
            }
            if tokio::time::timeout_at(deadline, polled).await.is_err() {
                return self.shared.polls.load(Ordering::SeqCst) > polls;
            }
        }
    }

    /// The error the function reported at `/init/error`, if any: (type, body).
    pub fn init_error(&self) -> Option<(String, Bytes)> {
        lock(&self.shared.init_error).clone()
    }

    /// A new request id, in the shape Lambda's have.
    pub fn new_request_id(&self) -> String {
        let n = self.shared.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-0000-4000-8000-{:012x}", now_ms() as u32, n)
    }

    /// Queues one invocation and waits for its outcome, at most `timeout`.
    pub async fn invoke(
        &self,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<(String, Outcome), InvokeError> {
        let request_id = self.new_request_id();
        let (outcome, _) = self.invoke_as(request_id.clone(), payload, timeout).await?;
        Ok((request_id, outcome))
    }

    /// As [`RuntimeApi::invoke`], with the caller's request id; also the runtime's poll count
    /// when it answered (for [`RuntimeApi::next_poll_after`]).
    pub async fn invoke_as(
        &self,
        request_id: String,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<(Outcome, u64), InvokeError> {
        let n = self.shared.counter.load(Ordering::Relaxed);
        let trace_id = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
            now_ms() / 1000,
            n,
            n
        );
        let (reply, outcome) = oneshot::channel();
        lock(&self.shared.pending).push_back(Pending {
            request_id: request_id.clone(),
            payload,
            deadline_ms: now_ms() + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            trace_id,
            reply,
        });
        self.shared.arrived.notify_one();
        match tokio::time::timeout(timeout, outcome).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(InvokeError::Exited),
            Err(_) => {
                lock(&self.shared.in_flight).remove(&request_id);
                lock(&self.shared.pending).retain(|p| p.request_id != request_id);
                Err(InvokeError::Timeout(timeout.as_secs_f64()))
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn route(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
    };
    let method = request.method().clone();
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned();
    match (method, rest) {
        (Method::GET, "/invocation/next") => Ok(next(&shared).await),
        (Method::POST, "/init/error") => {
            let body = read_body(request).await;
            *lock(&shared.init_error) = Some((error_type, body));
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        (Method::POST, tail) => {
            let target = tail
                .strip_prefix("/invocation/")
                .and_then(|t| t.rsplit_once('/'))
                .filter(|(_, kind)| matches!(*kind, "response" | "error"));
            let Some((request_id, kind)) = target else {
                return Ok(reply(StatusCode::NOT_FOUND, "unknown path"));
            };
            let sender = lock(&shared.in_flight).remove(request_id);
            let Some(sender) = sender else {
                return Ok(reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorType":"InvalidRequestID"}"#,
                ));
            };
            let body = read_body(request).await;
            let outcome = if kind == "response" {
                Outcome::Response(body)
            } else {
                Outcome::Error { error_type, body }
            };
            let _ = sender.send((outcome, shared.polls.load(Ordering::SeqCst)));
            Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, "unknown path")),
    }
}

async fn read_body(request: Request<Incoming>) -> Bytes {
    request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// Long-polls until an invocation is queued, then hands it to the runtime with Lambda's headers.
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    lock(&shared.first_poll).get_or_insert_with(Instant::now);
    shared.polls.fetch_add(1, Ordering::SeqCst);
    shared.polled.notify_waiters();
    loop {
        let notified = shared.arrived.notified();
        let pending = lock(&shared.pending).pop_front();
        if let Some(p) = pending {
            lock(&shared.in_flight).insert(p.request_id.clone(), p.reply);
            let mut response = reply(StatusCode::OK, p.payload);
            let headers = response.headers_mut();
            for (name, value) in [
                ("lambda-runtime-aws-request-id", p.request_id),
                ("lambda-runtime-deadline-ms", p.deadline_ms.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    shared.function_arn.clone(),
                ),
                ("lambda-runtime-trace-id", p.trace_id),
                ("content-type", "application/json".to_owned()),
            ] {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            return response;
        }
        notified.await;
    }
}

/// A function binary running against a [`RuntimeApi`], with Lambda's environment.
pub struct FunctionProcess {
    pub child: tokio::process::Child,
}

impl FunctionProcess {
    /// The command that runs `binary` as the function: Lambda's variables, then `environment`.
    pub fn command(
        binary: &Path,
        api: &RuntimeApi,
        function_name: &str,
        memory_mb: u32,
        environment: &[(String, String)],
    ) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary);
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .kill_on_drop(true);
        for (key, value) in environment {
            command.env(key, value);
        }
        command
    }

    pub fn spawn(
        binary: &Path,
        api: &RuntimeApi,
        function_name: &str,
        memory_mb: u32,
        environment: &[(String, String)],
    ) -> std::io::Result<FunctionProcess> {
        Ok(FunctionProcess {
            child: Self::command(binary, api, function_name, memory_mb, environment).spawn()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// One HTTP/1.1 request on a fresh connection; returns (status line, headers+body text).
    async fn http(api: &RuntimeApi, method: &str, path: &str, headers: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(api.address()).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: runtime\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    fn request_id(next_response: &str) -> String {
        next_response
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[tokio::test]
    async fn next_hands_out_the_event_with_lambdas_headers_and_a_handler_error_is_reported() {
        let api = RuntimeApi::start("fn").await.unwrap();
        let invocation = api.invoke(Bytes::from_static(b"{\"k\":1}"), Duration::from_secs(5));
        let runtime = async {
            let next = http(&api, "GET", "/2018-06-01/runtime/invocation/next", "", "").await;
            assert!(next.starts_with("HTTP/1.1 200"), "{next}");
            for header in ["lambda-runtime-deadline-ms", "lambda-runtime-trace-id"] {
                assert!(next.contains(header), "{header} missing: {next}");
            }
            assert!(next.contains("lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:fn"));
            assert!(next.ends_with("{\"k\":1}"));
            let id = request_id(&next);
            // A stray path must not end the invocation.
            let stray = http(
                &api,
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/nope"),
                "",
                "",
            )
            .await;
            assert!(stray.starts_with("HTTP/1.1 404"), "{stray}");
            let error_path = format!("/2018-06-01/runtime/invocation/{id}/error");
            let body = r#"{"errorType":"Boom","errorMessage":"x"}"#;
            let accepted = http(
                &api,
                "POST",
                &error_path,
                "lambda-runtime-function-error-type: Boom\r\n",
                body,
            )
            .await;
            assert!(accepted.starts_with("HTTP/1.1 202"), "{accepted}");
        };
        let (result, ()) = tokio::join!(invocation, runtime);
        let (_, outcome) = result.unwrap();
        assert_eq!(
            outcome,
            Outcome::Error {
                error_type: "Boom".into(),
                body: Bytes::from_static(br#"{"errorType":"Boom","errorMessage":"x"}"#)
            }
        );
    }

    #[tokio::test]
    async fn an_invocation_nobody_answers_times_out_as_lambda_reports_it() {
        let api = RuntimeApi::start("fn").await.unwrap();
        let error = api
            .invoke(Bytes::from_static(b"{}"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error, InvokeError::Timeout(0.2));
        assert_eq!(error.to_string(), "Task timed out after 0.20 seconds");
    }

    #[tokio::test]
    async fn an_unknown_request_id_is_refused_and_init_errors_are_recorded() {
        let api = RuntimeApi::start("fn").await.unwrap();
        let unknown = http(
            &api,
            "POST",
            "/2018-06-01/runtime/invocation/nope/response",
            "",
            "{}",
        )
        .await;
        assert!(unknown.starts_with("HTTP/1.1 400"), "{unknown}");
        let init = http(
            &api,
            "POST",
            "/2018-06-01/runtime/init/error",
            "lambda-runtime-function-error-type: Runtime.ConfigError\r\n",
            "{}",
        )
        .await;
        assert!(init.starts_with("HTTP/1.1 202"), "{init}");
        assert_eq!(
            api.init_error(),
            Some(("Runtime.ConfigError".into(), Bytes::from_static(b"{}")))
        );
    }
}
