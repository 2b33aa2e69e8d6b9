//! The runner's decisions, with ports that record what they were asked to do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use inlet_core::{DeadLetterCode, StoreError};

use super::*;

#[derive(Default)]
struct Recorder {
    dead: Mutex<Vec<(String, &'static str, String)>>,
    delays: Mutex<Vec<(String, u32)>>,
    dlq_down: AtomicBool,
}

impl DeadLetters for Recorder {
    async fn send(&self, letter: &DeadLetter<'_>) -> Result<(), StoreError> {
        if self.dlq_down.load(Ordering::SeqCst) {
            return Err(StoreError("dlq unavailable".into()));
        }
        let id = letter.message_id.to_owned();
        self.dead.lock().unwrap().push((
            id,
            letter.code.class().as_str(),
            letter.reason.to_owned(),
        ));
        Ok(())
    }
}

impl Visibility for Recorder {
    async fn delay(&self, receipt: &Receipt<'_>, seconds: u32) -> Result<(), StoreError> {
        self.delays
            .lock()
            .unwrap()
            .push((receipt.message_id.to_owned(), seconds));
        Ok(())
    }
}

fn event(bodies: &[(&str, u32)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (n, (body, receive_count)) in bodies.iter().enumerate() {
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m{n}"));
        message.body = Some((*body).to_owned());
        message.attributes = HashMap::from([(
            "ApproximateReceiveCount".to_owned(),
            receive_count.to_string(),
        )]);
        event.records.push(message);
    }
    event
}

fn outcome_of(message: &SqsMessage) -> Result<(), Failure> {
    match message.body.as_deref() {
        Some("ok") => Ok(()),
        Some("poison") => Err(Failure::permanent(
            DeadLetterCode::UnknownVersion,
            "unknown envelope version 9",
        )),
        Some("flaky") => Err(Failure::Transient("statement timeout".into())),
        Some("db-down") => Err(Failure::TransientBatch("database unreachable".into())),
        Some("slow-down") => Err(Failure::RetryAfter {
            reason: "receiver answered 429".into(),
            seconds: 120,
        }),
        _ => Err(Failure::permanent(
            DeadLetterCode::Undecodable,
            "unexpected",
        )),
    }
}

fn runner() -> BatchRunner<Recorder> {
    BatchRunner {
        ports: Recorder::default(),
        backoff: Backoff {
            base_secs: 2,
            max_secs: 60,
        },
    }
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn successes_are_acknowledged_and_nothing_else_happens() {
    let runner = runner();
    let (response, stats) = runner
        .run(&event(&[("ok", 1), ("ok", 1)]), async |m| outcome_of(m))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(stats.settled, [Settled::Done, Settled::Done]);
    assert!(
        runner.ports.dead.lock().unwrap().is_empty()
            && runner.ports.delays.lock().unwrap().is_empty()
    );
}

#[tokio::test]
async fn a_permanent_failure_goes_to_the_dlq_with_its_class_and_is_acknowledged() {
    let runner = runner();
    let (response, stats) = runner
        .run(&event(&[("ok", 1), ("poison", 1)]), async |m| outcome_of(m))
        .await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a dead-lettered record is not retried"
    );
    assert_eq!(stats.settled, [Settled::Done, Settled::DeadLettered]);
    assert_eq!(
        *runner.ports.dead.lock().unwrap(),
        [(
            "m1".to_owned(),
            "permanent",
            "unknown envelope version 9".to_owned()
        )]
    );
}

#[tokio::test]
async fn a_permanent_failure_whose_dlq_send_fails_is_retried_not_lost() {
    let runner = runner();
    runner.ports.dlq_down.store(true, Ordering::SeqCst);
    let (response, _) = runner
        .run(&event(&[("poison", 1)]), async |m| outcome_of(m))
        .await;
    assert_eq!(failed_ids(&response), ["m0"]);
    assert_eq!(runner.ports.delays.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_transient_failure_is_reported_with_a_backoff_from_its_receive_count() {
    let runner = runner();
    let (response, stats) = runner
        .run(&event(&[("flaky", 4)]), async |m| outcome_of(m))
        .await;
    assert_eq!(failed_ids(&response), ["m0"]);
    assert_eq!(stats.settled, [Settled::Retrying]);
    let delays = runner.ports.delays.lock().unwrap();
    let (_, seconds) = delays[0];
    assert!(
        (1..=16).contains(&seconds),
        "4th receive: 1..=2*2^3 s, got {seconds}"
    );
}

#[tokio::test]
async fn a_batch_wide_failure_stops_the_batch_and_delays_every_remaining_record() {
    let runner = runner();
    let mut handled = Vec::new();
    let batch = event(&[("ok", 1), ("db-down", 1), ("ok", 1), ("poison", 1)]);
    let (response, stats) = runner
        .run(&batch, async |m| {
            handled.push(m.message_id.clone().unwrap_or_default());
            outcome_of(m)
        })
        .await;
    assert_eq!(
        handled,
        ["m0", "m1"],
        "records after a batch-wide failure are not attempted"
    );
    assert_eq!(failed_ids(&response), ["m1", "m2", "m3"]);
    assert_eq!(
        (stats.succeeded(), stats.permanent(), stats.transient()),
        (1, 0, 3)
    );
    assert_eq!(runner.ports.delays.lock().unwrap().len(), 3);
    assert!(
        runner.ports.dead.lock().unwrap().is_empty(),
        "an unattempted record is never dead-lettered"
    );
}

#[test]
fn backoff_ceilings_double_from_the_base_and_stop_at_the_maximum() {
    let backoff = Backoff {
        base_secs: 2,
        max_secs: 60,
    };
    let ceilings: Vec<u32> = (1..=7).map(|n| backoff.ceiling_secs(n)).collect();
    assert_eq!(ceilings, [2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(backoff.ceiling_secs(0), 2);
    assert_eq!(backoff.ceiling_secs(u32::MAX), 60);
    let huge = Backoff {
        base_secs: u32::MAX,
        max_secs: u32::MAX,
    };
    assert_eq!(
        huge.ceiling_secs(40),
        43_200,
        "never above SQS's 12 h visibility limit"
    );
}

#[test]
fn backoff_delays_are_full_jitter_between_one_second_and_the_ceiling() {
    let backoff = Backoff {
        base_secs: 2,
        max_secs: 60,
    };
    for draw in [0, 1, 7, 1000, u32::MAX] {
        let delay = backoff.delay_secs(3, draw);
        assert!((1..=8).contains(&delay), "{draw}: {delay}");
    }
    let spread: std::collections::BTreeSet<u32> =
        (0..64).map(|d| backoff.delay_secs(3, d)).collect();
    assert_eq!(spread.len(), 8, "every delay from 1 to 8 s is reachable");
}

#[test]
fn reasons_are_bounded_on_a_character_boundary() {
    let long = "é".repeat(300);
    assert_eq!(bounded(&long).chars().count(), 256);
    assert_eq!(bounded("short"), "short");
}

#[tokio::test]
async fn a_retry_after_is_honoured_when_longer_than_the_backoff() {
    let runner = runner();
    let (response, stats) = runner
        .run(&event(&[("slow-down", 1)]), async |m| outcome_of(m))
        .await;
    assert_eq!(failed_ids(&response), ["m0"]);
    assert_eq!(stats.settled, [Settled::Retrying]);
    assert_eq!(
        *runner.ports.delays.lock().unwrap(),
        [("m0".to_owned(), 120)]
    );
}
