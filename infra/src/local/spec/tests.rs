use super::*;

fn locals() -> Locals {
    Locals {
        endpoint: "http://127.0.0.1:5000".into(),
        secrets: BTreeMap::from([
            (
                "DatabaseUrlSecretArn".into(),
                "postgres://app@db/inlet".into(),
            ),
            (
                "SchedulerDatabaseUrlSecretArn".into(),
                "postgres://scheduler@db/inlet".into(),
            ),
            (
                "OpsDatabaseUrlSecretArn".into(),
                "postgres://ops@db/inlet".into(),
            ),
            ("InletKeysSecretArn".into(), "k:AAAA".into()),
        ]),
        parameters: BTreeMap::new(),
        gateway_url: "http://127.0.0.1:3000".into(),
    }
}

fn repository_template() -> Template {
    Template::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"))
        .unwrap()
}

#[test]
fn the_repository_template_runs_locally_with_every_source_and_variable_resolved() {
    let specs = functions(&repository_template(), &locals()).unwrap();
    let stripe = specs
        .iter()
        .find(|s| s.id == "WebhookStripeFunction")
        .unwrap();
    assert_eq!(stripe.binary, "webhook-stripe");
    assert_eq!(
        stripe.http,
        [HttpRoute {
            method: "POST".into(),
            path: "/webhooks/stripe/{source_id}".into()
        }]
    );
    let env: BTreeMap<_, _> = stripe.environment.iter().cloned().collect();
    assert_eq!(
        env["EVENTS_QUEUE_URL"],
        "http://127.0.0.1:5000/123456789012/EventsQueue"
    );
    assert_eq!(env["SOURCES_TABLE"], "SourcesTable");
    assert_eq!(env["INLET_ENV"], "dev", "Stage's default");
    assert_eq!(
        env["INLET_KEYS"], "k:AAAA",
        "the secret comes from the local value"
    );

    let process = specs
        .iter()
        .find(|s| s.id == "ProcessEventsFunction")
        .unwrap();
    assert_eq!(
        process.sqs,
        [SqsSource {
            queue: "EventsQueue".into(),
            batch_size: 50,
            window: Duration::from_secs(1),
            max_concurrency: 10,
            report_failures: true
        }]
    );
    let env: BTreeMap<_, _> = process.environment.iter().cloned().collect();
    assert_eq!(env["DATABASE_URL"], "postgres://app@db/inlet");
    assert_eq!(
        env["EVENTS_DLQ_URL"],
        "http://127.0.0.1:5000/123456789012/EventsDLQ"
    );
    assert_eq!(process.timeout, Duration::from_secs(10));

    let scheduler = specs
        .iter()
        .find(|s| s.id == "ScheduleRemindersFunction")
        .unwrap();
    let env: BTreeMap<_, _> = scheduler.environment.iter().cloned().collect();
    assert_eq!(
        env["DATABASE_URL"], "postgres://scheduler@db/inlet",
        "the scheduler connects as its own role"
    );
}

const HEAD: &str = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: f\n    Properties:\n";

fn error_of(properties: &str) -> String {
    let template = Template::parse(&format!("{HEAD}{properties}")).unwrap();
    format!("{:#}", functions(&template, &locals()).unwrap_err())
}

#[test]
fn an_unsupported_event_type_or_intrinsic_is_an_error_naming_resource_and_property() {
    let error = error_of("      Events:\n        Up:\n          Type: S3\n");
    assert!(
        error.contains("F.Events.Up") && error.contains("S3"),
        "{error}"
    );
    let error =
        error_of("      Environment:\n        Variables:\n          X: !Join [\",\", [a, b]]\n");
    assert!(
        error.contains("F.Environment.Variables.X") && error.contains("Join"),
        "{error}"
    );
    let error = error_of("      Environment:\n        Variables:\n          X: !Ref Nope\n");
    assert!(error.contains("Ref Nope"), "{error}");
    let error = error_of("      Environment:\n        Variables:\n          X: !Sub \"{{resolve:secretsmanager:arn}}\"\n");
    assert!(error.contains("locally set X"), "{error}");
    let error = error_of("      Events:\n        Tick:\n          Type: Schedule\n          Properties:\n            Schedule: every minute\n");
    assert!(
        error.contains("F.Events.Tick.Properties.Schedule"),
        "{error}"
    );
}

#[test]
fn a_batch_size_is_held_to_lambdas_limits_for_a_standard_queue() {
    let sqs = |batch: &str, window: &str| {
        format!("      Events:\n        E:\n          Type: SQS\n          Properties:\n            Queue: !GetAtt Q.Arn\n            BatchSize: {batch}\n{window}")
    };
    let error = error_of(&sqs("50", ""));
    assert!(
        error.contains("F.Events.E.Properties.BatchSize")
            && error.contains("MaximumBatchingWindowInSeconds of at least 1"),
        "{error}"
    );
    assert!(error_of(&sqs("10001", "")).contains("1 to 10000"));
    assert!(error_of(&sqs("0", "")).contains("1 to 10000"));
    let template = Template::parse(&format!(
        "{HEAD}{}",
        sqs("50", "            MaximumBatchingWindowInSeconds: 1\n")
    ))
    .unwrap();
    let specs = functions(&template, &locals()).unwrap();
    assert_eq!(specs[0].sqs[0].batch_size, 50);
}

#[test]
fn schedules_and_sub_with_attributes_resolve() {
    let template = Template::parse(&format!(
        "{HEAD}      Environment:\n        Variables:\n          ARN: !Sub \"${{Q.Arn}}/${{AWS::Region}}/${{!Literal}}\"\n          NAME: !GetAtt Q.QueueName\n      Events:\n        Tick:\n          Type: ScheduleV2\n          Properties:\n            ScheduleExpression: rate(1 minute)\n            Input: '{{\"job\":\"digest\"}}'\n"
    ))
    .unwrap();
    let specs = functions(&template, &locals()).unwrap();
    let env: BTreeMap<_, _> = specs[0].environment.iter().cloned().collect();
    assert_eq!(
        env["ARN"],
        "arn:aws:sqs:us-east-1:123456789012:Q/us-east-1/${Literal}"
    );
    assert_eq!(env["NAME"], "Q");
    assert_eq!(
        specs[0].schedules[0].input.as_deref(),
        Some(r#"{"job":"digest"}"#)
    );
    assert_eq!(specs[0].timeout, Duration::from_secs(3), "Lambda's default");
}
