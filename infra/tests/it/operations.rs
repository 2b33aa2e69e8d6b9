//! The operator's commands against a running local stack: `inlet dlq`, `inlet replay`,
//! `inlet alerts test`, as an operator types them, with their bad inputs.

use std::time::Duration;

use inlet_testing::TestDb;
use inlet_webhooks::intake::demo;

use crate::local::{count, sample_body, until, Stack};

/// The dead letters `inlet dlq list` reports for EventsDLQ: (code, provider, count).
fn listed(output: &str) -> Vec<(String, String, i64)> {
    output
        .lines()
        .filter(|l| l.starts_with("EventsDLQ ") && !l.contains("(empty)"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_owned(), f[3].to_owned(), f[5].parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn an_operator_sorts_redrives_purges_and_replays_with_clear_refusals() {
    // A database without the demo company: its sources' events dead-letter as unknown_tenant.
    let db = TestDb::create().await;
    let stack = Stack::for_db(&db, "ops").await;
    stack.put_demo_sources().await;
    let payloads = tempfile::tempdir().unwrap();
    for (provider, sample) in [("stripe", "webhook-stripe"), ("whop", "webhook-whop")] {
        let file = payloads.path().join(format!("{provider}.json"));
        std::fs::write(&file, sample_body(sample)).unwrap();
        stack.send_demo(provider, &file).await;
    }

    // `list` groups them by cause.
    let listing = until(Duration::from_secs(30), async || {
        let (ok, output) = stack.cli(&["dlq", "list"]).await;
        assert!(ok, "{output}");
        (listed(&output).len() == 2).then_some(output)
    })
    .await;
    let mut groups = listed(&listing);
    groups.sort();
    assert_eq!(
        groups,
        vec![
            ("unknown_tenant".into(), "stripe".into(), 1),
            ("unknown_tenant".into(), "whop".into(), 1)
        ],
        "{listing}"
    );
    assert!(listing.contains("permanent"), "{listing}");

    // Bad inputs: refused with the reason, exit code 1, nothing moved.
    for (args, says) in [
        (
            vec!["dlq", "list", "--queue", "NoSuchDLQ"],
            "no dead-letter queue NoSuchDLQ",
        ),
        (
            vec!["dlq", "redrive", "--queue", "EventsQueue"],
            "one of EventsDLQ",
        ),
        (
            vec!["dlq", "redrive", "--code", "nonsense"],
            "not a dead-letter code",
        ),
        (
            vec!["dlq", "redrive", "--code", "endpoint_gone"],
            "no dead letter matches --code endpoint_gone; nothing moved",
        ),
        (
            vec!["dlq", "redrive", "--provider", "github", "--dry-run"],
            "no dead letter matches --provider github",
        ),
        (
            vec!["dlq", "purge", "--older-than", "1d"],
            "no dead letter is older than 1day; nothing deleted",
        ),
        (vec!["dlq", "purge", "--older-than", "soon"], "e.g. 7d, 12h"),
        (
            vec!["dlq", "show", "00000000-0000-0000-0000-000000000000"],
            "already redriven or purged",
        ),
    ] {
        let (ok, output) = stack.cli(&args).await;
        assert!(!ok, "{args:?} succeeded: {output}");
        assert!(output.contains(says), "{args:?}: {output}");
    }

    // The dry run says what would move and moves nothing.
    let (ok, output) = stack
        .cli(&["dlq", "redrive", "--provider", "stripe", "--dry-run"])
        .await;
    assert!(ok, "{output}");
    assert!(
        output.contains("dry run: 1 dead letter(s) would move; nothing moved"),
        "{output}"
    );
    let stripe_message = output
        .lines()
        .find_map(|l| l.strip_prefix("would move EventsDLQ "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let (_, after_dry_run) = stack.cli(&["dlq", "list"]).await;
    assert_eq!(listed(&after_dry_run).len(), 2, "{after_dry_run}");

    // `show` tells the cause and what the event is, not its body unless asked.
    let (ok, shown) = stack.cli(&["dlq", "show", &stripe_message]).await;
    assert!(ok, "{shown}");
    assert!(
        shown.contains("code           unknown_tenant (permanent)")
            && shown.contains("provider stripe company demo_company"),
        "{shown}"
    );
    assert!(!shown.contains("body "), "{shown}");
    let (ok, with_body) = stack.cli(&["dlq", "show", &stripe_message, "--body"]).await;
    assert!(ok && with_body.contains("body "), "{with_body}");

    // The cause fixed, the redrive processes the event once and empties its share of the DLQ.
    let (ok, output) = stack
        .cli(&["companies", "add", demo::DEMO_COMPANY, "--name", "Demo"])
        .await;
    assert!(ok, "{output}");
    let (ok, output) = stack.cli(&["dlq", "redrive", "--provider", "stripe"]).await;
    assert!(ok && output.contains("1 dead letter(s) moved"), "{output}");
    let db_ref = &db;
    until(Duration::from_secs(30), async || {
        (count(
            db_ref,
            "SELECT count(*) FROM webhook_events WHERE provider = 'stripe' AND status = 'completed'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM recovery_cases").await,
        1,
        "one recovery case"
    );
    let (ok, output) = stack.cli(&["dlq", "show", &stripe_message]).await;
    assert!(
        !ok && output.contains("already redriven or purged"),
        "{output}"
    );

    // Purge: the dry run deletes nothing, then the whop dead letter is gone for good.
    let (ok, output) = stack
        .cli(&["dlq", "purge", "--older-than", "0s", "--dry-run"])
        .await;
    assert!(
        ok && output.contains("dry run: 1 dead letter(s) would be deleted"),
        "{output}"
    );
    let (ok, output) = stack.cli(&["dlq", "purge", "--older-than", "0s"]).await;
    assert!(
        ok && output.contains("1 dead letter(s) deleted"),
        "{output}"
    );
    let (ok, output) = stack.cli(&["dlq", "list"]).await;
    assert!(
        ok && listed(&output).is_empty() && output.contains("EventsDLQ      (empty)"),
        "{output}"
    );
    // The redrive and the purge are on the audit log's system chain (dry runs are not).
    let audited: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT action || ' ' || details::text FROM audit_log \
              WHERE company_id IS NULL AND action LIKE 'dlq.%' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(
        audited[0].starts_with("dlq.redrive ") && audited[0].contains(r#""messages": 1"#),
        "{audited:?}"
    );
    assert!(audited[1].starts_with("dlq.purge "), "{audited:?}");

    // Replay: the dry run counts and names; the replay re-applies once; the ledger counts it.
    let event_id: String = db
        .admin()
        .await
        .query_one(
            "SELECT provider_event_id FROM webhook_events WHERE provider = 'stripe'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (ok, output) = stack
        .cli(&["replay", "--event", &event_id, "--dry-run"])
        .await;
    assert!(
        ok && output.contains("dry run: 1 event(s) would be replayed; nothing sent")
            && output.contains(&event_id),
        "{output}"
    );
    let (ok, output) = stack.cli(&["replay", "--event", &event_id]).await;
    assert!(ok && output.contains("1 event(s) replayed"), "{output}");
    until(Duration::from_secs(30), async || {
        (count(
            db_ref,
            "SELECT count(*) FROM webhook_events WHERE provider = 'stripe' AND replay_count = 1",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM recovery_cases").await,
        1,
        "a replay opens no second case"
    );

    // Replay's bad inputs.
    db.admin()
        .await
        .execute(
            "UPDATE webhook_events SET payload_enc = NULL, payload_key_id = NULL WHERE provider = 'stripe'",
            &[],
        )
        .await
        .unwrap();
    for (args, says) in [
        (
            vec!["replay", "--provider", "github"],
            "no event matches; nothing replayed",
        ),
        (vec!["replay"], "say what to replay"),
        (vec!["replay", "--since", "yesterday"], "RFC 3339"),
        (vec!["replay", "--status", "done"], "--status \"done\""),
        (
            vec!["replay", "--event", event_id.as_str()],
            "have no payload any more (retention dropped it)",
        ),
    ] {
        let (ok, output) = stack.cli(&args).await;
        assert!(!ok, "{args:?} succeeded: {output}");
        assert!(output.contains(says), "{args:?}: {output}");
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE replay_count > 1"
        )
        .await,
        0,
        "a refused replay sent nothing"
    );

    // The alert path, end to end: poison → DLQ → digest → warning topic.
    let (ok, output) = stack
        .cli(&[
            "alerts",
            "test",
            "--trigger-url",
            &stack.url,
            "--timeout-secs",
            "60",
        ])
        .await;
    assert!(ok, "{output}\n--- stack ---\n{}", stack.output());
    assert!(
        output.contains("dead-lettered after")
            && output.contains("alerted     after")
            && output.contains("alert path: ok"),
        "{output}"
    );
    let (_, output) = stack.cli(&["dlq", "list"]).await;
    assert!(
        listed(&output).is_empty(),
        "the test's dead letter is removed: {output}"
    );
}
