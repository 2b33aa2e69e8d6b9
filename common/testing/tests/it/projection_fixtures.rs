//! Every registered projection has a fixture event (common/domain/fixtures/<provider>/<type>.json)
//! that the real ledger applies: a misspelt or forgotten event type fails here instead of
//! recording live events `ignored`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use inlet_core::crypto::KeyRing;
use inlet_domain::{process, Processed, Projections};
use inlet_testing::{TestDb, TEST_KEYS};
use inlet_webhooks::envelope::{BodyEncoding, Envelope, EnvelopeMeta};
use inlet_webhooks::providers::Provider;

const COMPANY: &str = "co_fixtures";

pub(crate) fn fixture_path(provider: Provider, event_type: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../domain/fixtures")
        .join(provider.as_str())
        .join(format!("{event_type}.json"))
}

/// The registered (provider, type) pairs without a fixture file, named by the file to add.
fn missing_fixtures(projections: &Projections) -> Vec<String> {
    projections
        .registered()
        .into_iter()
        .filter(|(provider, kind)| !fixture_path(*provider, kind).is_file())
        .map(|(provider, kind)| {
            format!(
                "{provider} {kind} has a projection but no fixture: add common/domain/fixtures/{provider}/{kind}.json"
            )
        })
        .collect()
}

/// An envelope for a fixture body, as intake would have built it.
pub(crate) fn envelope(provider: Provider, event_type: &str, body: Vec<u8>) -> Envelope<'static> {
    Envelope {
        meta: EnvelopeMeta {
            version: 1,
            source_id: Cow::Owned(format!("src_fixtures_{provider}")),
            provider: Cow::Borrowed(provider.as_str()),
            company_id: Cow::Borrowed(COMPANY),
            event_id: Cow::Owned(format!("fixture-{provider}-{event_type}")),
            event_type: Cow::Owned(event_type.to_owned()),
            object_type: None,
            object_id: None,
            occurred_at: Some("2026-12-01T00:00:00Z".into()),
            received_at: "2026-12-01T00:00:01Z".into(),
            headers: BTreeMap::new(),
            trace_id: None,
            body_encoding: BodyEncoding::Json,
            replay: false,
        },
        body: Cow::Owned(body),
    }
}

#[test]
fn every_registered_projection_has_a_fixture_event() {
    let missing = missing_fixtures(&inlet_domain::projections::all());
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn a_projection_registered_under_a_misspelt_type_is_named_for_its_missing_fixture() {
    fn nothing<'e>(
        _: &mut inlet_postgres::Plan<'e>,
        _: &'e inlet_domain::Event<'e>,
    ) -> Result<(), inlet_core::Failure> {
        Ok(())
    }
    let projections =
        inlet_domain::projections::all().register(Provider::Stripe, "invoice.payed", nothing);
    assert_eq!(
        missing_fixtures(&projections),
        ["stripe invoice.payed has a projection but no fixture: add common/domain/fixtures/stripe/invoice.payed.json"]
    );
}

#[tokio::test]
async fn every_fixture_event_is_applied_by_its_projection() {
    let db = TestDb::create().await;
    db.admin()
        .await
        .execute(
            "INSERT INTO companies (company_id, name) VALUES ($1, 'Fixtures')",
            &[&COMPANY],
        )
        .await
        .unwrap();
    let projections = inlet_domain::projections::all();
    let keys = KeyRing::parse(TEST_KEYS, None).unwrap();
    let mut app = inlet_postgres::Connection::from(db.app().await);
    let registered = projections.registered();
    assert!(registered.len() >= 16, "{registered:?}");
    for (provider, kind) in registered {
        let path = fixture_path(provider, kind);
        let body = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{provider} {kind} is registered but has no fixture event at {} ({e}): add one",
                path.display()
            )
        });
        let envelope = envelope(provider, kind, body);
        let outcome = process(&mut app, &envelope, &projections, &keys).await;
        assert_eq!(outcome, Ok(Processed::Applied), "{provider} {kind}");
    }
    let completed: i64 = db
        .admin()
        .await
        .query_one(
            "SELECT count(*) FROM webhook_events WHERE status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(completed, 16);
}
