//! The tenant API on a running local stack (the real `tenant-api` binary behind the local
//! gateway, real Postgres, moto): every route of the served OpenAPI document × every kind of
//! key, no row of another tenant in any answer, bad input refused with nothing changed, and no
//! key in the logs, the database or DynamoDB.

use bytes::Bytes;
use inlet_core::api_key::Scope;
use inlet_core::crypto::{context, KeyRing};
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::keys;
use inlet_infra::http;
use inlet_postgres::Connection;
use inlet_testing::{database_holds, TestDb};
use serde_json::Value;

use crate::local::Stack;

const A: &str = "co_api_a";
const B: &str = "co_api_b";

/// Two tenants with one of everything each; every value carries its tenant's marker so an
/// answer holding another tenant's data is found by a text search.
async fn seed(db: &TestDb) -> (i64, i64) {
    let admin = db.admin().await;
    let keys = KeyRing::from_env().unwrap();
    let mut ids = Vec::new();
    for company in [A, B] {
        admin
            .execute(
                "INSERT INTO companies (company_id, name) VALUES ($1, $1 || ' name')",
                &[&company],
            )
            .await
            .unwrap();
        let source = format!("src_{company}");
        let event = format!("evt_{company}_1");
        let body = format!(r#"{{"id":"{event}","type":"invoice.paid","marker":"{company}"}}"#);
        let (key_id, sealed) =
            keys.seal_bytes(body.as_bytes(), &context::payload(company, &source, &event));
        let id: i64 = admin
            .query_one(
                "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, \
                 event_type, object_type, object_id, received_at, status, payload_min, payload_enc, \
                 payload_key_id) VALUES ($1, $2, 'stripe', $3, 'invoice.paid', 'invoice', \
                 'in_' || $1, now(), 'completed', jsonb_build_object('marker', $1::text), $4, $5) \
                 RETURNING id",
                &[&company, &source, &event, &sealed, &key_id],
            )
            .await
            .unwrap()
            .get(0);
        ids.push(id);
        admin
            .batch_execute(&format!(
                "INSERT INTO source_activity (company_id, source_id, provider, events, \
                 first_received_at, last_received_at) VALUES ('{company}', 'src_{company}', \
                 'stripe', 1, now(), now());
                 INSERT INTO recovery_cases (company_id, provider, membership_external_id, \
                 opened_by_payment, amount_at_risk, currency, opened_at) \
                 VALUES ('{company}', 'stripe', 'sub_{company}', 'in_{company}', 4900, 'usd', now());
                 INSERT INTO ab_test_variants (company_id, channel, name, subject_template, \
                 body_template) VALUES ('{company}', 'email', 'v_{company}', 's', 'b');
                 INSERT INTO members (company_id, provider, external_id) \
                 VALUES ('{company}', 'stripe', 'cus_{company}'), ('{company}', 'stripe', 'cus2_{company}');"
            ))
            .await
            .unwrap();
    }
    (ids[0], ids[1])
}

pub(crate) async fn key(
    owner: &mut Connection,
    company: &str,
    scopes: &[Scope],
) -> (String, String) {
    let made = keys::create(
        owner,
        &Actor::Operator("test".into()),
        &CompanyId::parse(company).unwrap(),
        "matrix",
        scopes,
        None,
    )
    .await
    .unwrap();
    (made.key_id.clone(), made.token.clone())
}

async fn call(
    stack: &Stack,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(token) = token {
        headers.push(("authorization".to_owned(), format!("Bearer {token}")));
    }
    let answer = http::request(
        method,
        &format!("{}{path}", stack.url),
        &headers,
        Bytes::from(body.to_owned()),
    )
    .await
    .unwrap();
    (
        answer.status,
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Every operation of the document: (method, path template, scopes it needs).
fn operations(document: &Value) -> Vec<(String, String, Option<Vec<String>>)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let scopes = operation["security"].as_array().map(|requirements| {
                requirements
                    .iter()
                    .flat_map(|r| r["api_key"].as_array().cloned().unwrap_or_default())
                    .map(|s| s.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            });
            found.push((method.to_uppercase(), path.clone(), scopes));
        }
    }
    found
}

/// A path of the document with A's ids in it: an event id, a member (one to erase, another to
/// export, as erasure comes first in the document's order), an export.
fn concrete(path: &str, method: &str, id: i64, export: i64) -> (String, &'static str) {
    let path = if path.ends_with("/export") {
        path.replace("{id}", &format!("cus2_{A}"))
    } else if path.starts_with("/v1/members/") {
        path.replace("{id}", &format!("cus_{A}"))
    } else if path.starts_with("/v1/sources/") {
        path.replace("{id}", &format!("src_{A}"))
    } else if path.starts_with("/v1/exports/") {
        path.replace("{id}", &export.to_string())
    } else {
        path.replace("{id}", &id.to_string())
    };
    match (method, path.ends_with("/replay")) {
        // Dry runs: the matrix proves access, not replays.
        ("POST", true) if path.contains("/events/replay") => (path, r#"{"dry_run": true}"#),
        ("POST", true) => (format!("{path}?dry_run=true"), ""),
        ("POST", false) if path.ends_with("/redrive") => (path, r#"{"dry_run": true}"#),
        ("POST", false) if path.ends_with("/rotate") => (path, "{}"),
        _ => (path, ""),
    }
}

#[tokio::test]
async fn every_route_answers_each_kind_of_key_rightly_and_never_shows_another_tenant() {
    let db = TestDb::create().await;
    let (a_event, b_event) = seed(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let (_, b_admin) = key(&mut owner, B, &[Scope::Admin]).await;
    let (revoked_id, revoked) = key(&mut owner, A, &[Scope::Admin]).await;
    keys::revoke(
        &mut owner,
        &Actor::Operator("test".into()),
        &CompanyId::parse(A).unwrap(),
        &revoked_id,
    )
    .await
    .unwrap();
    let (expired_id, expired) = key(&mut owner, A, &[Scope::Admin]).await;
    owner
        .execute(
            "UPDATE api_keys SET created_at = now() - interval '2 days', \
             expires_at = now() - interval '1 day' WHERE key_id = $1",
            &[&expired_id],
        )
        .await
        .unwrap();
    // A scope no route of this document needs.
    let (_, unscoped) = key(&mut owner, A, &[Scope::PrivacyDelete]).await;
    let mut tokens = vec![
        b_admin.clone(),
        revoked.clone(),
        expired.clone(),
        unscoped.clone(),
    ];

    let export = inlet_domain::privacy::request_export(
        &mut owner,
        &KeyRing::from_env().unwrap(),
        &Actor::Operator("test".into()),
        &CompanyId::parse(A).unwrap(),
        &format!("cus2_{A}"),
    )
    .await
    .unwrap();
    let stack = Stack::for_db(&db, "api").await;
    stack.put_tenant_source(A).await;
    let (status, document) = call(&stack, "GET", "/v1/openapi.json", None, "").await;
    assert_eq!(status, 200, "{document}");
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let operations = operations(&document);
    let secured = operations.iter().filter(|(_, _, s)| s.is_some()).count();
    assert!(
        secured >= 11,
        "the document lists the routes: {operations:?}"
    );

    // A dead letter of each tenant, with the attributes the consumer gives them.
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = inlet_adapters::aws::queue_url(&sqs, &format!("{}EventsDLQ", stack.prefix))
        .await
        .unwrap();
    for (company, code) in [(A, "unknown_tenant"), (B, "projection_rejected")] {
        let text = |v: &str| {
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        sqs.send_message()
            .queue_url(&dlq)
            .message_body("{}")
            .message_attributes("company_id", text(company))
            .message_attributes("inlet_error_code", text(code))
            .message_attributes("inlet_error_class", text("permanent"))
            .message_attributes("provider", text("stripe"))
            .send()
            .await
            .unwrap();
    }
    let replays_before: i64 = owner
        .query_one("SELECT sum(replay_count)::bigint FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    for (method, template, scopes) in &operations {
        let Some(scopes) = scopes else {
            let (status, _) = call(&stack, method, template, None, "").await;
            assert_eq!(status, 200, "{method} {template} needs no key");
            continue;
        };
        let needed: Vec<Scope> = scopes.iter().map(|s| Scope::parse(s).unwrap()).collect();
        // An operator's route answers across tenants, by design; admin does not imply it.
        let operator = needed.contains(&Scope::Operator);
        // A's key with exactly the scopes the document names for this route (any one scope
        // where it names none: any valid key), and one with every other scope but admin.
        let granted = if needed.is_empty() {
            vec![Scope::ReportsRead]
        } else {
            needed.clone()
        };
        let (_, own) = key(&mut owner, A, &granted).await;
        let others: Vec<Scope> = Scope::ALL
            .into_iter()
            .filter(|s| *s != Scope::Admin && !needed.contains(s))
            .collect();
        let (_, unscoped) = key(&mut owner, A, &others).await;
        tokens.push(own.clone());
        tokens.push(unscoped.clone());
        let (path, body) = concrete(template, method, a_event, export);
        let route = format!("{method} {template}");

        let (status, answer) = call(&stack, method, &path, Some(&own), body).await;
        assert!(
            (200..300).contains(&status),
            "{route} own key: {status} {answer}"
        );
        assert!(
            operator || !answer.contains(B),
            "{route}: tenant B's data in A's answer: {answer}"
        );

        let (status, answer) = call(&stack, method, &path, Some(&b_admin), body).await;
        assert!(
            !answer.contains(A),
            "{route}: tenant A's data in B's answer: {answer}"
        );
        if operator {
            assert_eq!(
                (status, code(&answer).as_str()),
                (403, "missing_scope"),
                "{route} B's admin key is no operator"
            );
        } else if template.contains("{id}") {
            assert_eq!(
                (status, code(&answer).as_str()),
                (404, "not_found"),
                "{route} B's key on A's id"
            );
        } else {
            assert!(
                (200..300).contains(&status),
                "{route} B's key: {status} {answer}"
            );
        }

        for (who, token, expect) in [
            ("no key", None, "missing_key"),
            ("revoked key", Some(revoked.as_str()), "key_revoked"),
            ("expired key", Some(expired.as_str()), "key_expired"),
            ("malformed key", Some("ink_nope"), "invalid_key"),
        ] {
            let (status, answer) = call(&stack, method, &path, token, body).await;
            assert_eq!(
                (status, code(&answer).as_str()),
                (401, expect),
                "{route} {who}: {answer}"
            );
        }
        if needed.is_empty() {
            continue;
        }
        let (status, answer) = call(&stack, method, &path, Some(&unscoped), body).await;
        assert_eq!(
            (status, code(&answer).as_str()),
            (403, "missing_scope"),
            "{route}: {answer}"
        );
    }
    // Each tenant sees its own dead letter only.
    let (status, answer) = call(&stack, "GET", "/v1/dead-letters", Some(&b_admin), "").await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("projection_rejected") && !answer.contains("unknown_tenant"),
        "{answer}"
    );
    let (_, a_reader) = key(&mut owner, A, &[Scope::EventsRead]).await;
    let (_, answer) = call(&stack, "GET", "/v1/dead-letters", Some(&a_reader), "").await;
    assert!(
        answer.contains("unknown_tenant") && !answer.contains("projection_rejected"),
        "{answer}"
    );
    tokens.push(a_reader);
    // B's own event is B's (the 404 above is not a broken route).
    let (status, _) = call(
        &stack,
        "GET",
        &format!("/v1/events/{b_event}"),
        Some(&b_admin),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let replays_after: i64 = owner
        .query_one("SELECT sum(replay_count)::bigint FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(replays_before, replays_after, "dry runs replayed nothing");

    // No key, nor its secret, in the logs, the database or the rate-limit table.
    let logs = stack.output();
    assert!(
        logs.contains("tenant API request"),
        "the requests were logged"
    );
    let secrets: Vec<&str> = tokens.iter().map(|t| &t[21..]).collect();
    for secret in &secrets {
        assert!(!logs.contains(secret), "a key's secret is in the logs");
    }
    let mut needles: Vec<&str> = tokens.iter().map(String::as_str).collect();
    needles.extend(&secrets);
    assert!(
        database_holds(&db.admin_url, &needles).is_empty(),
        "a key is in the database"
    );
    let config = inlet_adapters::aws::sdk_config().await;
    let scanned = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(format!("{}RateLimitTable", stack.prefix))
        .send()
        .await
        .unwrap();
    let items = format!("{:?}", scanned.items());
    assert!(
        items.contains("api-key:"),
        "the keys were rate limited: {items}"
    );
    for secret in &secrets {
        assert!(!items.contains(secret), "a key's secret is in DynamoDB");
    }
}

#[tokio::test]
async fn bad_input_is_a_problem_naming_it_and_changes_nothing() {
    let db = TestDb::create().await;
    let (a_event, b_event) = seed(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let (_, a) = key(&mut owner, A, &[Scope::Admin]).await;
    let (_, b) = key(&mut owner, B, &[Scope::Admin]).await;
    let stack = Stack::for_db(&db, "apibad").await;

    // A cursor of B's, and one tampered with.
    let (_, page) = call(&stack, "GET", "/v1/events?limit=1", Some(&b), "").await;
    let b_cursor = {
        owner
            .execute(
                "INSERT INTO webhook_events (company_id, source_id, provider, provider_event_id, \
                 event_type, received_at) VALUES ($1, 'src_x', 'stripe', 'evt_b2', 't', now())",
                &[&B],
            )
            .await
            .unwrap();
        let (_, page2) = call(&stack, "GET", "/v1/events?limit=1", Some(&b), "").await;
        let _ = page;
        serde_json::from_str::<Value>(&page2).unwrap()["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut tampered = b_cursor.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    let audit_before: i64 = owner
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    let replays_before: i64 = owner
        .query_one("SELECT sum(replay_count)::bigint FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "GET",
            format!("/v1/events?cursor={b_cursor}"),
            "",
            400,
            "invalid_cursor",
        ),
        (
            "GET",
            format!("/v1/events?cursor={tampered}"),
            "",
            400,
            "invalid_cursor",
        ),
        (
            "GET",
            "/v1/events?limit=1000000".into(),
            "",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/events?limit=-1".into(),
            "",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/events?type=x%27%3B%20DROP%20TABLE%20webhook_events%3B--&status=completed%27--"
                .into(),
            "",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/events?since=yesterday".into(),
            "",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/events?provider=stripe&provider=clerk".into(),
            "",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/v1/events?company_id=co_api_b".into(),
            "",
            400,
            "invalid_query",
        ),
        ("GET", format!("/v1/events/{b_event}"), "", 404, "not_found"),
        (
            "GET",
            "/v1/events/99999999999999999999".into(),
            "",
            400,
            "invalid_id",
        ),
        (
            "GET",
            "/v1/events/1%20OR%201=1".into(),
            "",
            400,
            "invalid_id",
        ),
        (
            "POST",
            format!("/v1/events/{b_event}/replay"),
            "",
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/events/replay".into(),
            "{not json",
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/events/replay".into(),
            r#"{"company_id":"co_api_b"}"#,
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/events/replay".into(),
            r#"{"limit":100000}"#,
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/events/replay".into(),
            r#"{"status":"completed' OR 1=1"}"#,
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/events/replay".into(),
            &*Box::leak(format!(r#"{{"type":"{}"}}"#, "x".repeat(20_000)).into_boxed_str()),
            413,
            "body_too_large",
        ),
        ("DELETE", "/v1/events".into(), "", 405, "method_not_allowed"),
        ("GET", "/v1/nothing".into(), "", 404, "not_found"),
        (
            "GET",
            "/v1/recovery/cases?status=closed".into(),
            "",
            400,
            "invalid_query",
        ),
    ];
    for (method, path, body, status, expect) in &cases {
        let (got, answer) = call(&stack, method, path, Some(&a), body).await;
        assert_eq!(
            (got, code(&answer).as_str()),
            (*status, *expect),
            "{method} {path}: {answer}"
        );
        let problem: Value = serde_json::from_str(&answer).unwrap();
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{answer}"
        );
        assert!(!answer.contains(B), "{method} {path} revealed B: {answer}");
    }
    // A body that is not JSON at all.
    let answer = http::request(
        "POST",
        &format!("{}/v1/events/replay", stack.url),
        &[
            ("authorization".into(), format!("Bearer {a}")),
            ("content-type".into(), "text/plain".into()),
        ],
        Bytes::from_static(b"status=completed"),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 415);

    let audit_after: i64 = owner
        .query_one("SELECT count(*) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0);
    let replays_after: i64 = owner
        .query_one("SELECT sum(replay_count)::bigint FROM webhook_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        (audit_before, replays_before),
        (audit_after, replays_after),
        "bad input changed something"
    );
    let (status, _) = call(
        &stack,
        "GET",
        &format!("/v1/events/{a_event}"),
        Some(&a),
        "",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_and_schemathesis_finds_no_5xx_and_no_answer_outside_it(
) {
    let db = TestDb::create().await;
    seed(&db).await;
    let mut owner = Connection::from(db.admin().await);
    // Admin and operator: every operation of the document can answer 2xx.
    let (_, token) = key(&mut owner, A, &[Scope::Admin, Scope::Operator]).await;
    let stack = Stack::for_db(&db, "apist").await;
    stack.put_tenant_source(A).await;
    let bin = crate::local::tool_dir("schemathesis");

    let (status, document) = call(&stack, "GET", "/v1/openapi.json", None, "").await;
    assert_eq!(status, 200);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &document).unwrap();
    let validated = std::process::Command::new(bin.join("openapi-spec-validator"))
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // A fixed seed by default, so a failure reproduces; SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261201".into());
    let run = tokio::process::Command::new(bin.join("st"))
        .args(["--config-file"])
        .arg(crate::local::repo("infra/schemathesis.toml"))
        .args(["run", &format!("{}/v1/openapi.json", stack.url)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "30", "--workers", "1"])
        // Under the key's own limit (50/s): a 429 is documented, but tests nothing.
        .args(["--rate-limit", "40/s", "--seed", &seed, "--no-color"])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis failed (seed {seed}):\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        report.contains("Tested: 18") && !report.contains("Authentication failed"),
        "every operation was tested:\n{report}"
    );
    assert!(
        !stack.output().contains(&token[21..]),
        "the key is not in the logs"
    );
}

#[tokio::test]
async fn erasing_a_member_through_the_api_leaves_them_in_no_column_log_or_dead_letter() {
    let db = crate::functions::demo_company_db().await;
    let stack = Stack::for_db(&db, "apierase").await;
    stack.put_demo_sources().await;
    let company = inlet_webhooks::intake::demo::DEMO_COMPANY;
    // Ada's Stripe history, signed and sent through intake, the queue and the consumer.
    let who = [
        "erase.me@example.com",
        "Erin Erasable",
        "cus_erase01",
        "sub_erase01",
        "in_erase01_failed",
    ];
    let fixtures = crate::local::repo("common/domain/fixtures/stripe");
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        "customer.created",
        "customer.subscription.created",
        "invoice.payment_failed",
    ] {
        let body = std::fs::read_to_string(fixtures.join(format!("{kind}.json")))
            .unwrap()
            .replace("ada@example.com", who[0])
            .replace("Ada Lovelace", who[1])
            .replace("cus_fx1", who[2])
            .replace("sub_fx1", who[3])
            .replace("in_fx_failed", who[4])
            .replace("evt_fx_", "evt_erase01_");
        let file = dir.path().join(format!("{kind}.json"));
        std::fs::write(&file, body).unwrap();
        let (ok, output) = stack
            .cli(&[
                "send",
                "stripe",
                "--source",
                "demo_stripe",
                "--file",
                file.to_str().unwrap(),
                "--url",
                &stack.url,
            ])
            .await;
        assert!(ok && output.starts_with("202 "), "{output}");
    }
    let db_ref = &db;
    crate::local::until(std::time::Duration::from_secs(30), async || {
        (crate::local::count(
            db_ref,
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'",
        )
        .await
            == 3)
            .then_some(())
    })
    .await;
    assert_eq!(
        database_holds(&db.admin_url, &who).len(),
        3,
        "ids in the clear before"
    );
    // A dead letter naming her, beside one that does not.
    let config = inlet_adapters::aws::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq = inlet_adapters::aws::queue_url(&sqs, &format!("{}EventsDLQ", stack.prefix))
        .await
        .unwrap();
    for body in [
        format!(r#"{{"customer":"{}"}}"#, who[2]),
        r#"{"customer":"cus_someone_else"}"#.to_owned(),
    ] {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let mut owner = Connection::from(db.admin().await);
    let (_, token) = key(&mut owner, company, &[Scope::PrivacyDelete]).await;
    let (status, answer) = call(
        &stack,
        "DELETE",
        &format!("/v1/members/{}", who[2]),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["dead_letters_deleted"], 1, "{answer}");
    assert!(
        answer["erased"]["events"].as_u64().unwrap() >= 3,
        "{answer}"
    );
    let (status, again) = call(
        &stack,
        "DELETE",
        &format!("/v1/members/{}", who[2]),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(
        (status, code(&again).as_str()),
        (404, "not_found"),
        "erased once"
    );

    assert!(
        database_holds(&db.admin_url, &who).is_empty(),
        "{:?}",
        database_holds(&db.admin_url, &who)
    );
    let logs = stack.output();
    assert!(
        logs.contains("event processed"),
        "the consumer's logs were captured"
    );
    for needle in who {
        assert!(!logs.contains(needle), "{needle} is in the logs");
    }
    let left = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = left.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, [r#"{"customer":"cus_someone_else"}"#]);
    // The ledger rows stayed (they still deduplicate): three rows, payloads dropped.
    assert_eq!(
        crate::local::count(
            &db,
            "SELECT count(*) FROM webhook_events WHERE payload_enc IS NULL AND payload_min IS NULL"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn a_member_with_50000_events_is_exported_through_the_api_within_the_functions_memory() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    admin
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_big', 'Big');
             INSERT INTO members (company_id, provider, external_id) VALUES ('co_big', 'stripe', 'cus_big');",
        )
        .await
        .unwrap();
    // The member's email, sealed as the projection seals it.
    let keys = KeyRing::from_env().unwrap();
    let (kid, sealed) = keys.seal_bytes(
        b"big.member@example.com",
        &context::member_email("co_big", "stripe", "cus_big"),
    );
    admin
        .execute(
            "UPDATE members SET email_enc = $1, email_key_id = $2 WHERE external_id = 'cus_big'",
            &[&sealed, &kid],
        )
        .await
        .unwrap();
    crate::cli::seed_member_events(&admin, "cus_big", 50_000).await;
    let mut owner = Connection::from(db.admin().await);
    let (_, token) = key(&mut owner, "co_big", &[Scope::PrivacyExport]).await;
    let stack = Stack::for_db(&db, "apiexport").await;

    let (status, answer) = call(
        &stack,
        "POST",
        "/v1/members/cus_big/export",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = serde_json::from_str::<Value>(&answer).unwrap()["id"]
        .as_i64()
        .unwrap();
    let started = std::time::Instant::now();
    let done = loop {
        let (_, answer) = call(
            &stack,
            "GET",
            &format!("/v1/exports/{id}"),
            Some(&token),
            "",
        )
        .await;
        let state: Value = serde_json::from_str(&answer).unwrap();
        if state["status"] != "pending" {
            break state;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(240),
            "the export is still pending; the stack said:\n{}",
            stack.output()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["event"], 50_000, "{done}");
    let url = done["url"].as_str().unwrap();
    let file = http::request("GET", url, &[], Bytes::new()).await.unwrap();
    assert_eq!(file.status, 200);
    let text = String::from_utf8(file.body.to_vec()).unwrap();
    assert_eq!(text.lines().count(), 50_001);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["email"], "big.member@example.com", "decrypted");
    assert!(text.contains(r#""payload":{"data""#), "payloads decrypted");

    // The function's own report: what it used against what it is given.
    let report = stack
        .wait_for(std::time::Duration::from_secs(10), |l| {
            l.starts_with("[ExportMemberFunction] REPORT")
        })
        .await;
    let number = |label: &str| -> u64 {
        report
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    let (used, size) = (number("Max Memory Used: "), number("Memory Size: "));
    eprintln!("export of 50,000 events: {report}");
    assert!(used < size, "used {used} MB of {size} MB: {report}");
    // A key of the company without privacy:export may not read it.
    let (_, other) = key(&mut owner, "co_big", &[Scope::EventsRead]).await;
    let (status, _) = call(
        &stack,
        "GET",
        &format!("/v1/exports/{id}"),
        Some(&other),
        "",
    )
    .await;
    assert_eq!(status, 403);
}
