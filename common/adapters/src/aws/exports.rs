//! Privacy exports on S3: a finished export file is uploaded from disk (streamed, so its size
//! never sits in memory) and handed out by a short-lived presigned URL.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;

use inlet_core::StoreError;

use super::describe;

#[derive(Debug, Clone)]
pub struct S3Exports {
    client: Client,
    bucket: String,
}

/// Creates a bucket in the local emulator if it is not there (`inlet local`'s resources).
pub async fn ensure_local_bucket(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> Result<(), StoreError> {
    let client = Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    if client.head_bucket().bucket(name).send().await.is_ok() {
        return Ok(());
    }
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| StoreError(format!("creating bucket {name} failed: {}", describe(&e))))
}

impl S3Exports {
    /// Path-style addressing against a local endpoint (`AWS_ENDPOINT_URL`), as the emulator
    /// serves buckets; virtual-hosted style on AWS.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let local = std::env::var("AWS_ENDPOINT_URL").is_ok();
        // An export file can be large: its upload gets minutes, not the seconds other calls get.
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(local)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .operation_timeout(Duration::from_secs(240))
                    .build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
            bucket: bucket.into(),
        }
    }

    /// Uploads the file at `path` as `key` (server-side encrypted, as the bucket requires).
    pub async fn upload(&self, key: &str, path: &Path) -> Result<(), StoreError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError(format!("reading the export file failed: {e}")))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("uploading the export failed: {}", describe(&e))))
    }
}

impl inlet_domain::ports::ExportFiles for S3Exports {
    /// A GET URL for `key` that works for `ttl`.
    async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError(format!("presigning: {e}")))?;
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map(|request| request.uri().to_owned())
            .map_err(|e| StoreError(format!("presigning the export failed: {}", describe(&e))))
    }
}

/// The exports queue on SQS.
pub struct SqsExportQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsExportQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl inlet_domain::ports::ExportQueue for SqsExportQueue {
    async fn send(&self, job: &inlet_domain::privacy::ExportMessage) -> Result<(), StoreError> {
        let body = serde_json::to_string(job).map_err(|e| StoreError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("queueing the export failed: {}", describe(&e))))
    }
}
