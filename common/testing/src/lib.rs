//! Helpers for tests and benchmarks, never linked into a deployed binary: a throwaway, migrated
//! database per test on the local server that `make test` starts (see
//! `infra/scripts/services.sh`), the emulator's tables and queues, a Postgres of a test's own,
//! and in-memory ports for the intake pipeline.
//!
//! Its `tests/it` is the library's integration suite (one test binary for every layer), run
//! against real Postgres and moto.

pub mod memory;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use inlet_postgres::{self as db, migrate};
use tokio_postgres::Client;

/// Reads a variable the local-services env file (`.local/env`) provides.
///
/// Panics with the fix when it is missing: integration tests run against real services and
/// must not silently pass without them.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: integration tests need the local services. Run `make test`, \
             or `make services && . .local/env` before `cargo nextest run`"
        )
    })
}

/// The repository's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join("migrations")
}

/// Replaces the database name in a `postgres://user@host:port/db?params` URL.
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| q);
    match query {
        Some(q) => format!("{scheme}://{authority}/{dbname}?{q}"),
        None => format!("{scheme}://{authority}/{dbname}"),
    }
}

/// Which of `needles` occur anywhere in the database's data: `pg_dump --data-only` of every
/// table (text and jsonb as text, bytea as hex; a needle given as hex finds raw bytes). For
/// "this value is stored nowhere" checks: a new table or column is searched without a change.
pub fn database_holds<'n>(admin_url: &str, needles: &[&'n str]) -> Vec<&'n str> {
    let bin = PathBuf::from(required_env("PG_BIN"));
    let output = std::process::Command::new(bin.join("pg_dump"))
        .args(["--data-only", "--no-owner", "--dbname", admin_url])
        .output()
        .expect("run pg_dump");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump = String::from_utf8_lossy(&output.stdout).to_lowercase();
    assert!(
        dump.contains("copy public.companies"),
        "the dump holds the tables"
    );
    needles
        .iter()
        .copied()
        .filter(|needle| dump.contains(&needle.to_lowercase()))
        .collect()
}

/// A fresh database with every migration applied. The local cluster is throwaway
/// (`make reset` removes it); `make test` drops leftovers from earlier runs first.
pub struct TestDb {
    pub name: String,
    /// Owner / migrator connection URL (superuser locally).
    pub admin_url: String,
    /// The application role's connection URL: what consumers and HTTP functions connect as.
    pub app_url: String,
    /// The scheduler role's connection URL: what schedule-reminders connects as.
    pub scheduler_url: String,
    /// The maintenance role's connection URL: what dlq-digest, watchdog and retention connect as.
    pub ops_url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates and migrates a new database.
    pub async fn create() -> TestDb {
        let db = Self::create_empty().await;
        let mut admin = db.admin().await;
        let migrations = migrate::load_dir(&migrations_dir()).expect("migrations load");
        migrate::apply(&mut admin, &migrations)
            .await
            .expect("migrations apply");
        db
    }

    /// Creates a new database with nothing in it.
    pub async fn create_empty() -> TestDb {
        let admin_url = required_env("DATABASE_ADMIN_URL");
        let app_url = required_env("DATABASE_URL");
        let scheduler_url = required_env("SCHEDULER_DATABASE_URL");
        let ops_url = required_env("OPS_DATABASE_URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "inlet_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let server = db::connect(&admin_url).await.expect("admin connection");
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        TestDb {
            admin_url: with_dbname(&admin_url, &name),
            app_url: with_dbname(&app_url, &name),
            scheduler_url: with_dbname(&scheduler_url, &name),
            ops_url: with_dbname(&ops_url, &name),
            name,
        }
    }

    /// A connection as the owner (bypasses RLS locally: superuser). For fixtures only.
    pub async fn admin(&self) -> Client {
        db::connect(&self.admin_url)
            .await
            .expect("admin connection")
    }

    /// A connection as the application role, as consumers and HTTP functions connect.
    pub async fn app(&self) -> Client {
        db::connect(&self.app_url).await.expect("app connection")
    }

    /// A connection as the maintenance role, as the operations crons connect.
    pub async fn ops(&self) -> Client {
        db::connect(&self.ops_url).await.expect("ops connection")
    }

    /// A connection as the scheduler role, as schedule-reminders connects.
    pub async fn scheduler(&self) -> Client {
        db::connect(&self.scheduler_url)
            .await
            .expect("scheduler connection")
    }
}

/// The intake's AWS resources in the emulator, with names unique to one test.
pub struct AwsFixture {
    pub sdk: aws_config::SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sources_table: String,
    pub idempotency_table: String,
    pub rate_limit_table: String,
    pub events_queue_url: String,
    pub events_dlq_url: String,
}

/// A key ring for tests (a fixed, test-only key).
pub const TEST_KEYS: &str = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

impl AwsFixture {
    /// Creates tables and queues shaped like template.yaml's, on `AWS_ENDPOINT_URL`.
    pub async fn create() -> AwsFixture {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let _ = required_env("AWS_ENDPOINT_URL");
        let sdk = inlet_adapters::aws::sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let suffix = format!(
            "{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut names = Vec::new();
        for (prefix, key) in [
            ("sources", "source_id"),
            ("idempotency", "id"),
            ("ratelimit", "pk"),
        ] {
            let name = format!("inlet-test-{prefix}-{suffix}");
            dynamodb
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("attribute definition"),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(key)
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("key schema"),
                )
                .send()
                .await
                .expect("create table in the emulator");
            names.push(name);
        }
        let dlq = sqs
            .create_queue()
            .queue_name(format!("inlet-test-events-dlq-{suffix}"))
            .send()
            .await
            .expect("create dlq");
        let dlq_url = dlq.queue_url().unwrap_or_default().to_owned();
        let dlq_arn = sqs
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("dlq arn")
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap_or_default();
        let queue = sqs
            .create_queue()
            .queue_name(format!("inlet-test-events-{suffix}"))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "60",
            )
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"5"}}"#),
            )
            .send()
            .await
            .expect("create queue");
        let mut names = names.into_iter();
        AwsFixture {
            sdk,
            dynamodb,
            sqs,
            sources_table: names.next().unwrap_or_default(),
            idempotency_table: names.next().unwrap_or_default(),
            rate_limit_table: names.next().unwrap_or_default(),
            events_queue_url: queue.queue_url().unwrap_or_default().to_owned(),
            events_dlq_url: dlq_url,
        }
    }

    /// Every message on the events queue right now (received, then left to reappear).
    pub async fn drain_events(&self) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.events_queue_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .visibility_timeout(60)
                .send()
                .await
                .expect("receive");
            let batch = output.messages().to_vec();
            if batch.is_empty() {
                return all;
            }
            all.extend(batch);
        }
    }
}

/// A Postgres server of one test's own, migrated, that the test may stop and start: what the
/// shared server cannot offer without disturbing every other test. Needs `PG_BIN` and
/// `INLET_SCRATCH_DIR` from `.local/env`. Stopped and removed on drop.
pub struct ScratchPostgres {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// Runs a server binary, as the `postgres` user when the tests run as root (Postgres refuses
/// to run as root).
fn as_postgres(program: &std::path::Path, args: &[&str]) -> std::process::Output {
    let running_as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut command = if running_as_root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

impl ScratchPostgres {
    /// initdb, start on a free port, create the application role and apply every migration.
    pub async fn start() -> ScratchPostgres {
        let bin = PathBuf::from(required_env("PG_BIN"));
        let parent = PathBuf::from(required_env("INLET_SCRATCH_DIR"));
        let root = parent.join(format!(
            "{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).expect("scratch directory");
        // The postgres user must own what it writes; `chown` is a no-op when not root.
        let _ = std::process::Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&parent)
            .output();
        let data = root.join("data");
        let output = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        );
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let scratch = ScratchPostgres { root, bin, port };
        scratch.start_server();
        let mut admin = db::connect(&scratch.admin_url())
            .await
            .expect("scratch admin connection");
        let migrations = migrate::load_dir(&migrations_dir()).expect("migrations load");
        migrate::apply(&mut admin, &migrations)
            .await
            .expect("migrations apply");
        scratch
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn app_url(&self) -> String {
        format!("postgres://inlet_app@127.0.0.1:{}/postgres", self.port)
    }

    pub fn ops_url(&self) -> String {
        format!("postgres://inlet_ops@127.0.0.1:{}/postgres", self.port)
    }

    pub fn scheduler_url(&self) -> String {
        format!(
            "postgres://inlet_scheduler@127.0.0.1:{}/postgres",
            self.port
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.root.join("data");
        let mut all = vec!["-D", data.to_str().expect("UTF-8 scratch path")];
        all.extend_from_slice(args);
        as_postgres(&self.bin.join("pg_ctl"), &all)
    }

    /// Starts the server (again), on the same port.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.root.display()
        );
        let log = self.root.join("postgres.log");
        let output = self.pg_ctl(&[
            "-l",
            log.to_str().expect("UTF-8 scratch path"),
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "start",
        ]);
        assert!(
            output.status.success(),
            "scratch Postgres did not start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`): sessions are ended.
    pub fn stop_server(&self) {
        let output = self.pg_ctl(&["-m", "fast", "-w", "-t", "30", "stop"]);
        assert!(
            output.status.success(),
            "scratch Postgres did not stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "-w", "-t", "10", "stop"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn dbname_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_dbname("postgres://a@127.0.0.1:5/x?connect_timeout=2", "y"),
            "postgres://a@127.0.0.1:5/y?connect_timeout=2"
        );
        assert_eq!(with_dbname("postgres://a@h:5/x", "y"), "postgres://a@h:5/y");
        assert_eq!(with_dbname("postgres://a@h:5", "y"), "postgres://a@h:5/y");
    }
}
