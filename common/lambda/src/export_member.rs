//! The `export-member` function: privacy export jobs from the exports queue. Each job writes the
//! member's NDJSON to a file in the function's temporary storage (one row at a time, so memory
//! stays flat however many events name the member), uploads it to the exports bucket (streamed
//! from disk) and completes the request. A redelivered job whose request is no longer pending
//! does nothing. `functions/export-member` calls [`run`].

use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

use inlet_adapters::aws::{sdk_config_for, Patience, S3Exports, SqsRedelivery};
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_core::{CompanyId, DeadLetterCode, Failure};
use inlet_domain::audit::Actor;
use inlet_domain::ports::{DeadLetters, Visibility};
use inlet_domain::privacy::{self, ExportMessage, PrivacyError};
use inlet_postgres::{Database, DbSettings};

use crate::batch::{Backoff, BatchRunner};
use crate::metrics::{self, MetricsSink};
use crate::telemetry::{self, LogFormat};

pub use lambda_runtime::Error;

const FUNCTION: &str = "export-member";

pub struct ExportSettings {
    pub database: DbSettings,
    pub keys: KeyRing,
    pub bucket: String,
    pub dlq_url: String,
    /// Where export files are written before upload (Lambda's /tmp).
    pub scratch: PathBuf,
}

impl ExportSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database: DbSettings::new(config::required(env, "DATABASE_URL")?),
            keys: config::key_ring(env)?,
            bucket: config::required(env, "EXPORTS_BUCKET")?,
            dlq_url: config::required(env, "EXPORTS_DLQ_URL")?,
            scratch: std::env::temp_dir(),
        })
    }
}

/// Everything a batch needs, built once per container.
pub struct Exporter<P> {
    pub runner: BatchRunner<P>,
    pub database: Database,
    pub keys: KeyRing,
    pub exports: S3Exports,
    pub scratch: PathBuf,
    pub metrics: Arc<dyn MetricsSink>,
}

impl<P: DeadLetters + Visibility> Exporter<P> {
    pub async fn handle_batch(&self, event: &SqsEvent) -> SqsBatchResponse {
        let started = Instant::now();
        let (response, stats) = self
            .runner
            .run(event, async |record| {
                self.handle(record.body.as_deref().unwrap_or_default())
                    .await
            })
            .await;
        metrics::emit_invocation(
            &*self.metrics,
            FUNCTION,
            &stats.invocation(started.elapsed()),
        );
        response
    }

    async fn handle(&self, body: &str) -> Result<(), Failure> {
        let job: ExportMessage = serde_json::from_str(body)
            .map_err(|_| Failure::permanent(DeadLetterCode::Undecodable, "not an export job"))?;
        let company = CompanyId::parse(&job.company_id).map_err(|_| {
            Failure::permanent(
                DeadLetterCode::Undecodable,
                "the job's company id is not one",
            )
        })?;
        let mut connection = self
            .database
            .client()
            .await
            .map_err(|e| Failure::TransientBatch(e.to_string()))?;
        let path = self.scratch.join(format!(
            "export-{}-{}.ndjson",
            std::process::id(),
            job.request_id
        ));
        let written = async {
            let file = std::fs::File::create(&path)
                .map_err(|e| Failure::Transient(format!("creating the export file: {e}")))?;
            let mut out = BufWriter::new(file);
            match privacy::write_pending_export(
                &mut connection,
                &self.keys,
                &company,
                job.request_id,
                &mut out,
            )
            .await
            {
                Ok(counts) => Ok(counts),
                Err(PrivacyError::Database(failure)) => Err(failure),
                Err(other) => Err(Failure::Transient(other.to_string())),
            }
        }
        .await;
        let actor = Actor::Function(FUNCTION);
        let outcome = match written {
            // Not pending: a redelivery of a finished job.
            Ok(None) => Ok(()),
            Ok(Some(counts)) => {
                let key = privacy::export_object_key(&company, job.request_id);
                match self.exports.upload(&key, &path).await {
                    Ok(()) => privacy::finish_export(
                        &mut connection,
                        &actor,
                        &company,
                        job.request_id,
                        Ok((&key, &counts)),
                    )
                    .await
                    .inspect(|()| {
                        tracing::info!(
                            request_id = job.request_id,
                            events = counts.get("event").copied().unwrap_or(0),
                            "export written"
                        )
                    }),
                    Err(error) => Err(Failure::Transient(error.0)),
                }
            }
            Err(Failure::Permanent(permanent)) => {
                privacy::finish_export(
                    &mut connection,
                    &actor,
                    &company,
                    job.request_id,
                    Err(permanent.code.as_str()),
                )
                .await?;
                Err(Failure::Permanent(permanent))
            }
            Err(other) => Err(other),
        };
        let _ = std::fs::remove_file(&path);
        outcome
    }
}

/// The whole of `export-member`'s `main`.
pub async fn run() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = ExportSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let sdk = sdk_config_for(Patience::Background).await;
    let exporter = Exporter {
        runner: BatchRunner {
            ports: SqsRedelivery::new(aws_sdk_sqs::Client::new(&sdk), settings.dlq_url),
            backoff: Backoff::default(),
        },
        database: Database::new(settings.database),
        keys: settings.keys,
        exports: S3Exports::new(&sdk, settings.bucket),
        scratch: settings.scratch,
        metrics: Arc::new(metrics::Stdout),
    };
    let exporter = &exporter;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(Box::pin(exporter.handle_batch(&event.payload)).await)
    }))
    .await
}
