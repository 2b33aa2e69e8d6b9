//! `inlet local` end to end: the real CLI runs a stack from a template, with real function
//! binaries, against Postgres and moto. Each test's stack names its queues and tables with a
//! prefix of its own, so it can run beside `make run` and the other tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use inlet_adapters::aws::DynamoSources;
use inlet_core::crypto::KeyRing;
use inlet_infra::http;
use inlet_testing::TestDb;
use inlet_webhooks::intake::demo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

pub(crate) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A tool's directory, installed by `infra/scripts/tools.sh NAME` where missing (`make test`
/// runs it first, so this only prints the path).
pub(crate) fn tool_dir(name: &str) -> PathBuf {
    let out = std::process::Command::new(repo("infra/scripts/tools.sh"))
        .arg(name)
        .output()
        .expect("run tools.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub(crate) fn unique_prefix(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}{}x{nanos}_", std::process::id())
}

pub(crate) struct Stack {
    child: tokio::process::Child,
    pub(crate) url: String,
    pub(crate) prefix: String,
    /// The owner's URL of the database the stack runs against, for the CLI.
    admin_url: Option<String>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Stack {
    pub(crate) async fn start(template: &Path, prefix: &str, env: &[(&str, String)]) -> Stack {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_inlet"));
        command
            .args([
                "local",
                "--port",
                "0",
                "--resource-prefix",
                prefix,
                "--template",
            ])
            .arg(template)
            .arg("--bin-dir")
            .arg(crate::functions::built_functions())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start inlet local");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let mut stack = Stack {
            child,
            url: String::new(),
            prefix: prefix.to_owned(),
            admin_url: None,
            lines,
        };
        let ready = stack
            .wait_for(Duration::from_secs(60), |l| {
                l.contains("ready: gateway on ")
            })
            .await;
        stack.url = ready
            .rsplit_once("gateway on ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        stack
    }

    /// template.yaml's stack, with names of its own, against a test database's roles.
    pub(crate) async fn for_db(db: &TestDb, tag: &str) -> Stack {
        let mut stack = Stack::start(
            &repo("template.yaml"),
            &unique_prefix(tag),
            &[
                ("DATABASE_URL", db.app_url.clone()),
                ("SCHEDULER_DATABASE_URL", db.scheduler_url.clone()),
                ("OPS_DATABASE_URL", db.ops_url.clone()),
            ],
        )
        .await;
        stack.admin_url = Some(db.admin_url.clone());
        stack
    }

    pub(crate) fn sources_table(&self) -> String {
        format!("{}SourcesTable", self.prefix)
    }

    /// One demo source per provider, straight into the stack's table (no company check).
    pub(crate) async fn put_demo_sources(&self) {
        let config = inlet_adapters::aws::sdk_config().await;
        let sources = DynamoSources::new(
            aws_sdk_dynamodb::Client::new(&config),
            self.sources_table(),
            KeyRing::from_env().unwrap(),
        );
        for source in demo::demo_sources() {
            sources.put(&source).await.unwrap();
        }
    }

    /// A Stripe source `src_<company>` whose every event is `company`'s, straight into the
    /// stack's table.
    pub(crate) async fn put_tenant_source(&self, company: &str) {
        let mut source = demo::demo_sources()
            .into_iter()
            .find(|s| s.provider == inlet_webhooks::providers::Provider::Stripe)
            .unwrap();
        source.source_id = format!("src_{company}");
        source.tenant = inlet_webhooks::intake::TenantRule::Fixed(
            inlet_core::CompanyId::parse(company).unwrap(),
        );
        let config = inlet_adapters::aws::sdk_config().await;
        DynamoSources::new(
            aws_sdk_dynamodb::Client::new(&config),
            self.sources_table(),
            KeyRing::from_env().unwrap(),
        )
        .put(&source)
        .await
        .unwrap();
    }

    /// `inlet send` of `file` to the provider's demo source through this stack; asserts the
    /// gateway accepted it (202).
    pub(crate) async fn send_demo(&self, provider: &str, file: &Path) {
        let source = demo::demo_source_id(
            inlet_webhooks::providers::Provider::parse(provider).expect("a provider"),
        );
        let (ok, output) = self
            .cli(&[
                "send",
                provider,
                "--source",
                &source,
                "--file",
                file.to_str().unwrap(),
                "--url",
                &self.url,
                "--table",
                &self.sources_table(),
            ])
            .await;
        assert!(ok && output.starts_with("202 "), "{provider}: {output}");
    }

    /// The first output line matching `found`, waiting up to `limit`.
    pub(crate) async fn wait_for(&self, limit: Duration, found: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| found(l)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < limit,
                "not seen within {limit:?}; output so far:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    async fn get(&self, path: &str) -> http::Answer {
        http::request("GET", &format!("{}{path}", self.url), &[], Bytes::new())
            .await
            .unwrap()
    }

    fn queue_url(&self, queue: &str) -> String {
        format!(
            "{}/123456789012/{}{queue}",
            std::env::var("AWS_ENDPOINT_URL").unwrap(),
            self.prefix
        )
    }

    /// Runs the CLI as an operator would against this stack (its sources table, gateway,
    /// database, and for the operator commands its resource prefix), from the repository root;
    /// returns (success, stdout + stderr).
    pub(crate) async fn cli(&self, args: &[&str]) -> (bool, String) {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_inlet"));
        command
            .args(args)
            .current_dir(repo(""))
            .env("SOURCES_TABLE", self.sources_table())
            .env("INLET_API_URL", &self.url);
        if ["dlq", "replay", "alerts"].contains(&args[0]) {
            command.args(["--resource-prefix", &self.prefix]);
        }
        if let Some(admin_url) = &self.admin_url {
            command.env("DATABASE_ADMIN_URL", admin_url);
        }
        let output = command.output().await.unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }
}

pub(crate) async fn until<T>(limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) async fn count(db: &TestDb, sql: &str) -> i64 {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

pub(crate) fn sample_body(name: &str) -> Vec<u8> {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(repo(&format!("events/{name}.json"))).unwrap(),
    )
    .unwrap();
    event["body"].as_str().unwrap().as_bytes().to_vec()
}

#[tokio::test]
async fn signed_webhooks_flow_through_gateway_queue_and_consumer_into_postgres() {
    let db = crate::functions::demo_company_db().await;
    let stack = Stack::for_db(&db, "e2e").await;
    stack.put_demo_sources().await;
    let sources_table = stack.sources_table();
    let config = inlet_adapters::aws::sdk_config().await;
    let payloads = tempfile::tempdir().unwrap();

    // Stripe, Clerk and Whop events, signed by `inlet send` as their providers sign them.
    for (provider, sample) in [
        ("stripe", "webhook-stripe"),
        ("clerk", "webhook-clerk"),
        ("whop", "webhook-whop"),
    ] {
        let file = payloads.path().join(format!("{provider}.json"));
        std::fs::write(&file, sample_body(sample)).unwrap();
        let (ok, output) = stack
            .cli(&[
                "send",
                provider,
                "--source",
                &demo::demo_source_id(
                    inlet_webhooks::providers::Provider::parse(provider).unwrap(),
                ),
                "--file",
                file.to_str().unwrap(),
                "--url",
                &stack.url,
                "--table",
                &sources_table,
            ])
            .await;
        assert!(ok && output.starts_with("202 "), "{provider}: {output}");
    }
    let db = &db;
    until(Duration::from_secs(30), async || {
        let done = count(
            db,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'",
        )
        .await;
        (done == 3).then_some(())
    })
    .await;
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM recovery_cases WHERE status = 'open' AND provider = 'stripe'"
        )
        .await,
        1,
        "the failed Stripe invoice opened a recovery case"
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM members WHERE provider = 'clerk'").await,
        1
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM payments WHERE provider = 'whop' AND status = 'failed'"
        )
        .await,
        1
    );
    let report = stack
        .wait_for(Duration::from_secs(5), |l| {
            l.starts_with("[ProcessEventsFunction] REPORT RequestId:")
        })
        .await;
    assert!(report.contains("Max Memory Used:"), "{report}");

    // A poison message: straight to the dead-letter queue with its class.
    let sqs = aws_sdk_sqs::Client::new(&config);
    sqs.send_message()
        .queue_url(stack.queue_url("EventsQueue"))
        .message_body("not an envelope")
        .send()
        .await
        .unwrap();
    let dlq = stack.queue_url("EventsDLQ");
    let dead = until(Duration::from_secs(30), async || {
        let received = sqs
            .receive_message()
            .queue_url(&dlq)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        received.messages.unwrap_or_default().into_iter().next()
    })
    .await;
    assert_eq!(dead.body(), Some("not an envelope"));
    assert_eq!(
        dead.message_attributes()
            .and_then(|a| a.get("inlet_error_class"))
            .and_then(|v| v.string_value()),
        Some("permanent")
    );

    // Every sample in events/ through `inlet local invoke`, re-signed for now.
    let samples = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo("events")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, samples.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    inlet_infra::events::refresh(samples.path(), now as i64).unwrap();
    let mut invoked = 0;
    for entry in std::fs::read_dir(samples.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        // webhook-stripe -> WebhookStripeFunction, process-events -> ProcessEventsFunction
        let function: String = name
            .split('-')
            .map(|w| w[..1].to_uppercase() + &w[1..])
            .collect::<String>()
            + "Function";
        let (ok, output) = stack
            .cli(&[
                "local",
                "invoke",
                &function,
                "--event",
                path.to_str().unwrap(),
                "--url",
                &stack.url,
            ])
            .await;
        assert!(ok, "{name}: {output}");
        assert!(output.contains("REPORT RequestId:"), "{name}: {output}");
        if name == "track-click" {
            // The sample's token was not sealed with this machine's key ring: a plain 404.
            assert!(output.contains("\"statusCode\": 404"), "{name}: {output}");
        } else if name == "tenant-api" {
            // The sample's key was never created here: a 401 problem, which still proves the
            // function answered an API Gateway event.
            assert!(
                output.contains("\"statusCode\": 401") && output.contains("invalid_key"),
                "{name}: {output}"
            );
        } else if name == "console" {
            // The sample's session cookie does not open: to sign-in, nothing done.
            assert!(
                output.contains("\"statusCode\": 303") && output.contains("/console/sign-in"),
                "{name}: {output}"
            );
        } else if name.starts_with("webhook-") {
            let status = output
                .lines()
                .find_map(|l| l.trim().strip_prefix("\"statusCode\": "))
                .and_then(|s| s.trim_end_matches(',').parse::<u16>().ok());
            assert!(
                status.is_some_and(|s| (200..300).contains(&s)),
                "{name}: {output}"
            );
        } else if ["process-events", "send-reminders", "export-member"].contains(&name.as_str()) {
            assert!(
                output.contains("\"batchItemFailures\": []"),
                "{name}: {output}"
            );
        } else {
            // A cron's result names what its run did.
            let expected = match name.as_str() {
                "schedule-reminders" => "\"claimed\"",
                "dlq-digest" => "\"published\"",
                "watchdog" => "\"requeued\"",
                "retention" => "\"events_deleted\"",
                other => panic!("no expectation for the sample {other}"),
            };
            assert!(output.contains(expected), "{name}: {output}");
        }
        invoked += 1;
    }
    assert_eq!(
        invoked, 17,
        "seven webhook samples, three SQS batches, four scheduled events, one click, one API call, \
         one console page"
    );
    assert!(
        !stack.output().contains("evt_1PdemoFailed0001\",\"object\""),
        "no payload body in the logs"
    );
}

#[tokio::test]
async fn timeouts_crashes_and_schedules_behave_as_lambda_and_shutdown_is_clean() {
    let prefix = unique_prefix("fx");
    let mut stack = Stack::start(
        &repo("infra/tests/fixtures/local-template.yaml"),
        &prefix,
        &[],
    )
    .await;

    let ok = stack.get("/fixture/ok").await;
    assert_eq!((ok.status, &ok.body[..]), (200, &b"ok"[..]));
    let cold = stack
        .wait_for(Duration::from_secs(5), |l| {
            l.starts_with("[HttpFixtureFunction] REPORT")
        })
        .await;
    assert!(
        cold.contains("Init Duration:") && cold.contains("Memory Size: 128 MB"),
        "{cold}"
    );

    // Work after the answer: the client has its answer at once; the invocation (Duration, the
    // environment's availability) lasts until the runtime asks for the next event.
    let asked = Instant::now();
    let after = stack.get("/fixture/after").await;
    assert_eq!(
        (after.status, &after.body[..]),
        (200, &b"answered first"[..])
    );
    assert!(
        asked.elapsed() < Duration::from_millis(400),
        "answered before the post-response work: {:?}",
        asked.elapsed()
    );
    stack
        .wait_for(Duration::from_secs(5), |l| {
            l == "[HttpFixtureFunction] post-response work done"
        })
        .await;
    let report = stack
        .wait_for(Duration::from_secs(5), |l| {
            l.starts_with("[HttpFixtureFunction] REPORT")
                && l.split("Duration: ")
                    .nth(1)
                    .and_then(|d| d.split(' ').next())
                    .and_then(|ms| ms.parse::<f64>().ok())
                    .is_some_and(|ms| ms >= 500.0)
        })
        .await;
    assert!(report.contains("Billed Duration"), "{report}");

    let missing = stack.get("/nowhere").await;
    assert_eq!(missing.status, 404);
    assert_eq!(&missing.body[..], br#"{"message":"Not Found"}"#);

    let panicked = stack.get("/fixture/panic").await;
    assert_eq!(
        panicked.status, 502,
        "a handler error is a 502 at the gateway"
    );
    let again = stack.get("/fixture/ok").await;
    assert_eq!(again.status, 200, "the function keeps serving");

    let crashed = stack.get("/crash").await;
    assert_eq!(crashed.status, 502);
    stack
        .wait_for(Duration::from_secs(5), |l| {
            l.starts_with("[CrashAtInitFunction] REPORT")
                && l.contains("Error Type: Runtime.ExitError")
        })
        .await;
    assert_eq!(
        stack.get("/crash").await.status,
        502,
        "restarted, and crashes again"
    );

    let slow = stack.get("/fixture/sleep").await;
    assert_eq!(slow.status, 503);
    stack
        .wait_for(Duration::from_secs(5), |l| {
            l.contains("Task timed out after 2.00 seconds")
        })
        .await;

    // A consumer that times out: the batch stays and comes back after the visibility timeout.
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sent = sqs
        .send_message()
        .queue_url(stack.queue_url("FixtureQueue"))
        .message_body("slow")
        .send()
        .await
        .unwrap();
    let id = sent.message_id().unwrap().to_owned();
    stack
        .wait_for(Duration::from_secs(10), |l| {
            l.starts_with("[SlowConsumerFunction] REPORT") && l.contains("Status: timeout")
        })
        .await;
    stack
        .wait_for(Duration::from_secs(20), |l| {
            l.contains(&format!("record {id} receive 2"))
        })
        .await;

    // `inlet local trigger` fires a schedule now; the schedule itself fires every minute.
    let (ok, output) = stack
        .cli(&[
            "local",
            "trigger",
            "EveryMinuteFunction",
            "--url",
            &stack.url,
        ])
        .await;
    assert!(ok && output.contains("REPORT RequestId:"), "{output}");
    let (ok, output) = stack
        .cli(&[
            "local",
            "trigger",
            "HttpFixtureFunction",
            "--url",
            &stack.url,
        ])
        .await;
    assert!(!ok && output.contains("has no Schedule event"), "{output}");
    let triggered = || {
        stack
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| *l == "[EveryMinuteFunction] scheduled event from aws.events")
            .count()
    };
    let after_trigger = triggered();
    assert!(after_trigger >= 1, "{}", stack.output());
    // The schedule fires at the next minute on its own.
    until(Duration::from_secs(75), async || {
        (triggered() > after_trigger).then_some(())
    })
    .await;

    // Ctrl-C (SIGTERM here): everything stops, no function process stays behind.
    let pid = stack.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), stack.child.wait())
        .await
        .expect("inlet local stops within its longest timeout")
        .unwrap();
    assert!(status.success(), "{}", stack.output());
    stack
        .wait_for(Duration::from_secs(2), |l| l == "[inlet] stopped")
        .await;
    let children = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    assert!(children.stdout.is_empty(), "function processes left behind");
}

#[tokio::test]
async fn a_new_user_onboards_a_company_adds_its_source_and_sees_a_signed_event_stored() {
    // A fresh database with nothing seeded: the user's own company, through the CLI.
    let db = TestDb::create().await;
    let stack = Stack::for_db(&db, "onb").await;
    let cli = async |args: &[&str]| stack.cli(args).await;

    // A source for a company that does not exist yet is refused, naming the fix.
    let (ok, output) = cli(&[
        "sources",
        "add",
        "--provider",
        "stripe",
        "--company",
        "co_acme",
        "--id",
        "acme_stripe",
    ])
    .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("company co_acme does not exist")
            && output.contains("inlet companies add co_acme"),
        "{output}"
    );

    let (ok, output) = cli(&[
        "companies",
        "add",
        "co_acme",
        "--name",
        "Acme Inc",
        "--settings-json",
        r#"{"recovery_url": "https://acme.example/billing"}"#,
    ])
    .await;
    assert!(ok && output.contains("company co_acme added"), "{output}");
    let (ok, output) = cli(&[
        "sources",
        "add",
        "--provider",
        "stripe",
        "--company",
        "co_acme",
        "--id",
        "acme_stripe",
        "--secret",
        "whsec_acme_test_secret",
    ])
    .await;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("{}/webhooks/stripe/acme_stripe", stack.url)),
        "{output}"
    );

    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(payload.path(), sample_body("webhook-stripe")).unwrap();
    let (ok, output) = cli(&[
        "send",
        "stripe",
        "--source",
        "acme_stripe",
        "--file",
        payload.path().to_str().unwrap(),
        "--url",
        &stack.url,
    ])
    .await;
    assert!(ok && output.starts_with("202 "), "{output}");
    let db = &db;
    until(Duration::from_secs(30), async || {
        (count(
            db,
            "SELECT count(*) FROM webhook_events WHERE company_id = 'co_acme' AND status = 'completed'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM recovery_cases WHERE company_id = 'co_acme' AND status = 'open'"
        )
        .await,
        1,
        "the projection ran: the failed invoice opened a recovery case"
    );
}

#[tokio::test]
async fn companies_refuse_bad_ids_names_and_settings_naming_the_field_and_write_nothing() {
    let db = TestDb::create().await;
    let inlet = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_inlet"))
            .args(args)
            .env("DATABASE_ADMIN_URL", &db.admin_url)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let long = "x".repeat(129);
    for (args, named) in [
        (vec!["companies", "add", "", "--name", "A"], "company id"),
        (
            vec!["companies", "add", long.as_str(), "--name", "A"],
            "company id",
        ),
        (
            vec!["companies", "add", "co a", "--name", "A"],
            "company id",
        ),
        (vec!["companies", "add", "co_a", "--name", " "], "name"),
        (
            vec![
                "companies",
                "add",
                "co_a",
                "--name",
                "A",
                "--settings-json",
                "[1]",
            ],
            "settings: must be a JSON object",
        ),
        (
            vec![
                "companies",
                "add",
                "co_a",
                "--name",
                "A",
                "--settings-json",
                "{\"colour\":1}",
            ],
            "colour: is not a setting",
        ),
        (
            vec![
                "companies",
                "add",
                "co_a",
                "--name",
                "A",
                "--settings-json",
                "{\"retention_days\":\"90\"}",
            ],
            "retention_days: must be a whole number of days",
        ),
        (
            vec![
                "companies",
                "add",
                "co_a",
                "--name",
                "A",
                "--settings-json",
                "{oops",
            ],
            "--settings-json is not JSON",
        ),
    ] {
        let (ok, stderr) = inlet(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM companies").await, 0);

    assert!(inlet(&["companies", "add", "co_a", "--name", "Acme"]).0);
    let (ok, stderr) = inlet(&["companies", "add", "co_a", "--name", "Acme"]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    assert!(inlet(&["companies", "add", "co_a", "--name", "Other", "--exists-ok"]).0);
    let (ok, stderr) = inlet(&[
        "companies",
        "set",
        "co_a",
        "--settings-json",
        "{\"reminder_channel\":\"sms\"}",
    ]);
    assert!(!ok && stderr.contains("reminder_channel"), "{stderr}");
    assert!(
        inlet(&[
            "companies",
            "set",
            "co_a",
            "--settings-json",
            "{\"reminder_channel\":\"email\"}"
        ])
        .0
    );
    let settings: String = db
        .admin()
        .await
        .query_one("SELECT name || ' ' || settings::text FROM companies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(settings, r#"Acme {"reminder_channel": "email"}"#);
    // The add and the one accepted set are audited (refusals and the no-op add are not), with
    // the names of the settings and never their values.
    let audited: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT action || ' ' || target || ' ' || details::text FROM audit_log \
              WHERE company_id = 'co_a' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        audited,
        [
            r#"company.add co_a {"settings": []}"#,
            r#"company.set co_a {"name": false, "settings": ["reminder_channel"]}"#
        ]
    );
}
