//! Creates template.yaml's S3 buckets, DynamoDB tables, SNS topics and SQS queues in the local emulator, named after
//! their logical ids. Idempotent: existing ones are updated in place.

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use crate::template::{scalar, Template};

/// A resource as it exists locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResource {
    pub logical_id: String,
    pub kind: &'static str,
    /// Table name, or queue URL.
    pub address: String,
}

pub async fn create_all(
    template: &Template,
    config: &aws_config::SdkConfig,
) -> anyhow::Result<Vec<LocalResource>> {
    let dynamodb = &aws_sdk_dynamodb::Client::new(config);
    let sqs = &aws_sdk_sqs::Client::new(config);
    let sns = &aws_sdk_sns::Client::new(config);
    let mut created = Vec::new();
    // Buckets (privacy exports), named as S3 allows: lower case.
    for (id, _) in template.of_kind("AWS::S3::Bucket") {
        let name = template.local_bucket_name(id);
        inlet_adapters::aws::ensure_local_bucket(config, &name)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        created.push(LocalResource {
            logical_id: id.clone(),
            kind: "bucket",
            address: name,
        });
    }
    // Topics (operator alerts): creating one that exists returns it.
    for (id, _) in template.of_kind("AWS::SNS::Topic") {
        let name = template.local_name(id);
        let arn = sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .with_context(|| format!("creating topic {name}"))?
            .topic_arn()
            .unwrap_or_default()
            .to_owned();
        created.push(LocalResource {
            logical_id: id.clone(),
            kind: "topic",
            address: arn,
        });
    }
    for (id, resource) in template.of_kind("AWS::DynamoDB::Table") {
        let name = template.local_name(id);
        create_table(dynamodb, &name, &resource.properties).await?;
        created.push(LocalResource {
            logical_id: id.clone(),
            kind: "table",
            address: name,
        });
    }
    // Queues first without redrive (a DLQ must exist before a queue names it), then redrive.
    let queues: Vec<_> = template.of_kind("AWS::SQS::Queue").collect();
    for (id, resource) in &queues {
        let name = template.local_name(id);
        let url = upsert_queue(sqs, &name, &queue_attributes(id, &resource.properties)?).await?;
        created.push(LocalResource {
            logical_id: (*id).clone(),
            kind: "queue",
            address: url,
        });
    }
    for (id, resource) in &queues {
        if let Some(redrive) = resource.properties.get("RedrivePolicy") {
            let target = redrive
                .get("deadLetterTargetArn")
                .context(format!("{id}.RedrivePolicy has no deadLetterTargetArn"))?;
            let arn = template.resolve_arn(id, "RedrivePolicy.deadLetterTargetArn", target)?;
            let max = redrive
                .get("maxReceiveCount")
                .and_then(scalar)
                .unwrap_or_else(|| "5".to_owned());
            let policy =
                serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max}).to_string();
            let url = queue_url(sqs, &template.local_name(id)).await?;
            sqs.set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::RedrivePolicy, policy)
                .send()
                .await
                .with_context(|| format!("setting {id}'s RedrivePolicy"))?;
        }
    }
    Ok(created)
}

fn queue_attributes(
    id: &str,
    properties: &Value,
) -> anyhow::Result<Vec<(QueueAttributeName, String)>> {
    let mut attributes = Vec::new();
    for (property, name) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
        ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
    ] {
        if let Some(value) = properties.get(property) {
            let text = scalar(value)
                .with_context(|| format!("{id}.{property} must be a plain value locally"))?;
            attributes.push((name, text));
        }
    }
    if properties.get("FifoQueue").is_some() {
        bail!("{id}.FifoQueue: FIFO queues are not supported by the local stack yet");
    }
    Ok(attributes)
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    let output = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("queue {name} not found"))?;
    Ok(output.queue_url().unwrap_or_default().to_owned())
}

async fn upsert_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> anyhow::Result<String> {
    if let Ok(url) = queue_url(sqs, name).await {
        let mut request = sqs.set_queue_attributes().queue_url(&url);
        for (key, value) in attributes {
            request = request.attributes(key.clone(), value);
        }
        if !attributes.is_empty() {
            request
                .send()
                .await
                .with_context(|| format!("updating queue {name}"))?;
        }
        return Ok(url);
    }
    let mut request = sqs.create_queue().queue_name(name);
    for (key, value) in attributes {
        request = request.attributes(key.clone(), value);
    }
    let output = request
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?;
    Ok(output.queue_url().unwrap_or_default().to_owned())
}

async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    id: &str,
    properties: &Value,
) -> anyhow::Result<()> {
    let list = |name: &str| {
        properties
            .get(name)
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default()
    };
    let field = |item: &Value, name: &str| item.get(name).and_then(scalar);
    let mut request = dynamodb
        .create_table()
        .table_name(id)
        .billing_mode(BillingMode::PayPerRequest);
    for definition in list("AttributeDefinitions") {
        let (Some(name), Some(kind)) = (
            field(&definition, "AttributeName"),
            field(&definition, "AttributeType"),
        ) else {
            bail!("{id}.AttributeDefinitions: every entry needs AttributeName and AttributeType");
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()?,
        );
    }
    for key in list("KeySchema") {
        let (Some(name), Some(kind)) = (field(&key, "AttributeName"), field(&key, "KeyType"))
        else {
            bail!("{id}.KeySchema: every entry needs AttributeName and KeyType");
        };
        request = request.key_schema(
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()?,
        );
    }
    if properties.get("GlobalSecondaryIndexes").is_some() {
        bail!("{id}.GlobalSecondaryIndexes: not supported by the local stack yet");
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(e).with_context(|| format!("creating table {id}")),
    }
    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        if let Some(attribute) = ttl.get("AttributeName").and_then(scalar) {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()?;
            // moto answers ValidationException when TTL is already on: harmless.
            let _ = dynamodb
                .update_time_to_live()
                .table_name(id)
                .time_to_live_specification(spec)
                .send()
                .await;
        }
    }
    Ok(())
}
