//! Payment recovery end to end, on real Postgres, moto and a receiver that checks signatures:
//! a failed payment becomes reminders at their offsets (the test drives the scheduler's clock),
//! they go out in order, the member pays, the case is recovered, the conversion is attributed to
//! the variant last sent, and the reminders not yet sent are cancelled.

use std::sync::Arc;
use std::time::Duration;

use inlet_adapters::aws::SqsReminderQueue;
use inlet_domain::reminders::schedule::run_once;
use inlet_postgres::Connection;
use inlet_testing::AwsFixture;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::schedule_reminders::{drain, reminders_queue};
use crate::send_reminders::{add_endpoint, sender_with, serve, Receiver};
use crate::stripe_recovery::{invoice, rows, run, setup, stripe, subscription, COMPANY};

#[tokio::test]
async fn a_failed_payment_becomes_reminders_sent_in_order_until_the_member_pays() {
    let receiver = Arc::new(Receiver::default());
    let url = serve(receiver.clone()).await;
    let db = setup(json!({"recovery_url": "https://pay.example/fix"})).await;
    add_endpoint(&db, COMPANY, &url).await;
    db.admin()
        .await
        .batch_execute(&format!(
            "INSERT INTO ab_test_variants (company_id, channel, name, subject_template, body_template, weight)
             VALUES ('{COMPANY}', 'webhook', 'gentle', 'A note about {{{{plan}}}}', 'Fix it: {{{{recovery_link}}}}', 1),
                    ('{COMPANY}', 'webhook', 'direct', 'Payment failed', 'Pay {{{{amount}}}} now: {{{{recovery_link}}}}', 1);"
        ))
        .await
        .unwrap();

    // The payment failed an hour ago; the clock below is the scheduler's.
    let failed_at = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let at = |hours_after: i64| failed_at + time::Duration::hours(hours_after);
    let text = |t: OffsetDateTime| t.format(&Rfc3339).unwrap();
    let ms = |t: OffsetDateTime| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap();
    run(
        &db,
        &[
            stripe(
                "evt_sub",
                "customer.subscription.created",
                &text(at(-24)),
                subscription("active"),
            ),
            stripe(
                "evt_fail",
                "invoice.payment_failed",
                &text(failed_at),
                invoice("in_1", "open"),
            ),
        ],
    )
    .await;

    let fx = AwsFixture::create().await;
    let queue_url = reminders_queue(&fx).await;
    let queue = SqsReminderQueue::new(fx.sqs.clone(), &queue_url);
    let sender = sender_with(false, None);
    let mut scheduler = Connection::from(db.scheduler().await);
    let mut consumer = Connection::from(db.app().await);
    let mut tick = async |hours_after: i64| -> u64 {
        let stats = run_once(
            &mut scheduler,
            &queue,
            100,
            Duration::from_secs(5),
            ms(at(hours_after) + time::Duration::minutes(1)),
        )
        .await
        .unwrap();
        for job in drain(&fx, &queue_url).await {
            assert_eq!(sender.deliver(&mut consumer, &job, 1).await, Ok("sent"));
        }
        stats.enqueued
    };
    assert_eq!(tick(0).await, 1, "the 0 h reminder is due at once");
    assert_eq!(tick(1).await, 0, "nothing more until 24 h");
    assert_eq!(tick(25).await, 1, "the 24 h reminder");

    // The member pays after the second reminder.
    run(
        &db,
        &[stripe(
            "evt_paid",
            "invoice.paid",
            &text(at(26)),
            invoice("in_1", "paid"),
        )],
    )
    .await;
    assert_eq!(
        tick(200).await,
        0,
        "the 72 h and 168 h reminders were cancelled"
    );

    let delivered = receiver.delivered.lock().unwrap().clone();
    let order: Vec<i64> = delivered
        .iter()
        .map(|(_, body)| body["data"]["reminder_id"].as_i64().unwrap())
        .collect();
    let statuses: Vec<(i64, i32, String)> = rows(
        &db,
        "SELECT id, offset_hours, status FROM reminders ORDER BY offset_hours",
    )
    .await
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert_eq!(
        order,
        [statuses[0].0, statuses[1].0],
        "sent in the order of their offsets"
    );
    let statuses: Vec<(i32, String)> = statuses.into_iter().map(|(_, o, s)| (o, s)).collect();
    assert_eq!(
        statuses,
        [
            (0, "sent".to_owned()),
            (24, "sent".to_owned()),
            (72, "cancelled".to_owned()),
            (168, "cancelled".to_owned())
        ]
    );
    let case = &rows(&db, "SELECT status, closed_by_payment FROM recovery_cases").await[0];
    assert_eq!(
        (case.get::<_, String>(0), case.get::<_, String>(1)),
        ("recovered".to_owned(), "in_1".to_owned())
    );
    let attributed = &rows(
        &db,
        "SELECT c.variant_id = u.variant_id, c.amount FROM ab_test_conversions c
           JOIN reminders r ON r.offset_hours = 24
           JOIN ab_test_usage u ON u.reminder_id = r.id
          WHERE c.kind = 'conversion'",
    )
    .await;
    assert_eq!(attributed.len(), 1, "one conversion");
    assert!(
        attributed[0].get::<_, bool>(0),
        "attributed to the variant of the last reminder sent"
    );
    assert_eq!(attributed[0].get::<_, i64>(1), 4900);
}
