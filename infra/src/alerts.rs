//! `inlet alerts test`: a synthetic failure that travels the real path — a marked poison
//! message on the events queue, dead-lettered by the consumer, counted by the DLQ digest,
//! published to the warning topic — and when each step happened. The digest marks it
//! synthetic; the test removes its dead letter afterwards.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use clap::{Args, Subcommand};
use inlet_adapters::aws::{queue_url, SqsDeadLetters};
use inlet_domain::ops::dead_letters;
use inlet_domain::ports::DeadLetterQueue;

use crate::dlq::Stack;

#[derive(Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    stack: Stack,
    #[command(subcommand)]
    command: AlertsCommand,
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Send a synthetic failure down the real alert path and report when it arrived.
    Test {
        /// The warning topic's ARN (the stack's AlertsWarnTopicArn output); locally derived.
        #[arg(long, env = "ALERTS_WARN_TOPIC_ARN")]
        warn_topic_arn: Option<String>,
        /// Fire the digest now through the local stack's control path (the gateway's URL);
        /// without it (on AWS), wait for the hourly digest.
        #[arg(long)]
        trigger_url: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
}

pub async fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let AlertsCommand::Test {
        warn_topic_arn,
        trigger_url,
        timeout_secs,
    } = args.command;
    let stack = &args.stack;
    let topic = match (warn_topic_arn, &stack.stack) {
        (Some(arn), _) => arn,
        (None, None) => format!(
            "arn:aws:sns:{}:123456789012:{}",
            crate::template::LOCAL_REGION,
            stack.name("AlertsWarnTopic")
        ),
        (None, Some(_)) => bail!("give --warn-topic-arn (the stack's AlertsWarnTopicArn output)"),
    };
    let trigger_url = trigger_url.or_else(|| {
        stack
            .stack
            .is_none()
            .then(|| "http://127.0.0.1:3000".to_owned())
    });
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    let id = format!(
        "alerttest-{}",
        hex::encode(inlet_core::crypto::random_bytes(6))
    );

    // A queue of our own on the warning topic, to see the alert arrive.
    let inbox_url = sqs
        .create_queue()
        .queue_name(format!("inlet-{id}"))
        .send()
        .await
        .context("creating the test's inbox queue")?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let inbox_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbox_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| anyhow!("the inbox queue has no ARN"))?;
    let subscription = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&inbox_arn)
        .send()
        .await
        .with_context(|| format!("subscribing to {topic}"))?
        .subscription_arn()
        .unwrap_or_default()
        .to_owned();
    let outcome = travel(
        &sqs,
        stack,
        &id,
        trigger_url.as_deref(),
        &inbox_url,
        deadline,
    )
    .await;
    let _ = sns
        .unsubscribe()
        .subscription_arn(&subscription)
        .send()
        .await;
    let _ = sqs.delete_queue().queue_url(&inbox_url).send().await;
    outcome
}

async fn travel(
    sqs: &aws_sdk_sqs::Client,
    stack: &Stack,
    id: &str,
    trigger_url: Option<&str>,
    inbox_url: &str,
    deadline: Instant,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let events = queue_url(sqs, &stack.name("EventsQueue")).await?;
    let dlq = queue_url(sqs, &stack.name("EventsDLQ")).await?;
    let marker = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(id)
        .build()?;
    sqs.send_message()
        .queue_url(&events)
        .message_body(format!("inlet synthetic alert test {id}: not an envelope"))
        .message_attributes("inlet_synthetic", marker)
        .send()
        .await?;
    println!("sent        a marked poison message to the events queue ({id})");

    let port = SqsDeadLetters::new(sqs.clone());
    let dead = loop {
        let scanned = dead_letters::scan(&port, &dlq).await?;
        dead_letters::release(&port, &dlq, &scanned).await?;
        let found = scanned
            .iter()
            .find(|r| {
                r.message
                    .attributes
                    .get("inlet_synthetic")
                    .map(String::as_str)
                    == Some(id)
            })
            .map(|r| r.message.clone());
        if let Some(found) = found {
            break found;
        }
        if Instant::now() > deadline {
            bail!("the synthetic message did not reach the dead-letter queue in time: is process-events running?");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "dead-lettered after {:.1} s with code {}",
        started.elapsed().as_secs_f64(),
        dead.code()
    );

    if let Some(url) = trigger_url {
        let endpoint = format!(
            "{}/_inlet/trigger/DlqDigestFunction",
            url.trim_end_matches('/')
        );
        let answer = crate::http::post(&endpoint, &[], bytes::Bytes::new()).await?;
        if answer.status != 200 {
            bail!(
                "triggering the digest failed: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        println!("triggered   the DLQ digest");
    } else {
        println!("waiting     for the scheduled DLQ digest");
    }
    loop {
        let received = sqs
            .receive_message()
            .queue_url(inbox_url)
            .wait_time_seconds(2)
            .send()
            .await?;
        let alert = received
            .messages()
            .iter()
            .filter_map(|m| m.body())
            .find(|body| body.contains("[synthetic]"));
        if let Some(alert) = alert {
            let subject = serde_json::from_str::<serde_json::Value>(alert)
                .ok()
                .and_then(|v| v["Subject"].as_str().map(str::to_owned))
                .unwrap_or_default();
            println!(
                "alerted     after {:.1} s: {subject}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("no synthetic digest arrived on the warning topic in time");
        }
    }
    // The test's dead letter is removed; nothing else is touched.
    let scanned = dead_letters::scan(&port, &dlq).await?;
    let (mine, others): (Vec<_>, Vec<_>) = scanned.into_iter().partition(|r| {
        r.message
            .attributes
            .get("inlet_synthetic")
            .map(String::as_str)
            == Some(id)
    });
    for received in &mine {
        port.delete(&dlq, &received.receipt).await?;
    }
    dead_letters::release(&port, &dlq, &others).await?;
    println!(
        "alert path: ok ({:.1} s end to end)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
