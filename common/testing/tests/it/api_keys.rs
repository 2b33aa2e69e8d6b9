//! Tenant API keys against the real database, as the application role authenticates them.

use inlet_core::api_key::Scope;
use inlet_core::CompanyId;
use inlet_domain::audit::Actor;
use inlet_domain::keys::{self, Refused};
use inlet_postgres::Connection;
use inlet_testing::{database_holds, TestDb};

async fn with_companies(db: &TestDb) {
    db.admin()
        .await
        .batch_execute(
            "INSERT INTO companies (company_id, name) VALUES ('co_a', 'A'), ('co_b', 'B')",
        )
        .await
        .unwrap();
}

fn co(id: &str) -> CompanyId {
    CompanyId::parse(id).unwrap()
}

#[tokio::test]
async fn a_key_authenticates_as_its_company_until_revoked_or_expired() {
    let db = TestDb::create().await;
    with_companies(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let actor = Actor::Operator("test".into());
    let key = keys::create(
        &mut owner,
        &actor,
        &co("co_a"),
        "ci",
        &[Scope::EventsRead],
        None,
    )
    .await
    .unwrap();
    let mut app = Connection::from(db.app().await);

    let ok = keys::authenticate(&mut app, &key.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.company, co("co_a"));
    assert_eq!(ok.scopes, [Scope::EventsRead]);
    assert_eq!(ok.key_id, key.key_id);

    // A wrong secret for a real id and an id that does not exist are the same answer.
    let wrong = format!(
        "{}{}",
        &key.token[..key.token.len() - 1],
        if key.token.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        keys::authenticate(&mut app, &wrong).await.unwrap(),
        Err(Refused::Unknown)
    );
    let other = format!("ink_{}_{}", "0".repeat(16), "a".repeat(64));
    assert_eq!(
        keys::authenticate(&mut app, &other).await.unwrap(),
        Err(Refused::Unknown)
    );
    for bad in [
        "",
        "Bearer x",
        "ink_'; DROP TABLE api_keys; --",
        &key.token.to_uppercase(),
    ] {
        assert_eq!(
            keys::authenticate(&mut app, bad).await.unwrap(),
            Err(Refused::Malformed),
            "{bad:?}"
        );
    }

    // Expired: the same key with its expiry in the past.
    db.admin()
        .await
        .execute(
            "UPDATE api_keys SET created_at = now() - interval '2 days', \
             expires_at = now() - interval '1 day' WHERE key_id = $1",
            &[&key.key_id],
        )
        .await
        .unwrap();
    assert_eq!(
        keys::authenticate(&mut app, &key.token).await.unwrap(),
        Err(Refused::Expired)
    );

    // Revoked wins over expired, and is audited once.
    assert!(keys::revoke(&mut owner, &actor, &co("co_a"), &key.key_id)
        .await
        .unwrap());
    assert!(!keys::revoke(&mut owner, &actor, &co("co_a"), &key.key_id)
        .await
        .unwrap());
    assert_eq!(
        keys::authenticate(&mut app, &key.token).await.unwrap(),
        Err(Refused::Revoked)
    );
    let audited: Vec<String> = db
        .admin()
        .await
        .query(
            "SELECT action || ' ' || target FROM audit_log WHERE company_id = 'co_a' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        audited,
        [
            format!("key.create {}", key.key_id),
            format!("key.revoke {}", key.key_id)
        ]
    );
}

#[tokio::test]
async fn another_company_cannot_revoke_or_list_a_key_and_an_unknown_company_gets_none() {
    let db = TestDb::create().await;
    with_companies(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let actor = Actor::Operator("test".into());
    let key = keys::create(&mut owner, &actor, &co("co_a"), "", &[Scope::Admin], None)
        .await
        .unwrap();
    assert!(matches!(
        keys::revoke(&mut owner, &actor, &co("co_b"), &key.key_id).await,
        Err(keys::KeyError::UnknownKey(_))
    ));
    assert!(keys::list(&mut owner, &co("co_b"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(keys::list(&mut owner, &co("co_a")).await.unwrap().len(), 1);
    assert!(matches!(
        keys::create(
            &mut owner,
            &actor,
            &co("co_nobody"),
            "",
            &[Scope::Admin],
            None
        )
        .await,
        Err(keys::KeyError::UnknownCompany(_))
    ));
    let mut app = Connection::from(db.app().await);
    assert!(keys::authenticate(&mut app, &key.token)
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn a_created_key_is_stored_nowhere_in_the_clear() {
    let db = TestDb::create().await;
    with_companies(&db).await;
    let mut owner = Connection::from(db.admin().await);
    let actor = Actor::Operator("test".into());
    let key = keys::create(
        &mut owner,
        &actor,
        &co("co_a"),
        "ci",
        &[Scope::EventsRead],
        None,
    )
    .await
    .unwrap();
    let mut app = Connection::from(db.app().await);
    let authenticated = keys::authenticate(&mut app, &key.token)
        .await
        .unwrap()
        .unwrap();
    let (tx, _) = app.tenant_tx(&authenticated.company).await.unwrap();
    keys::touch(&tx, &authenticated.key_id).await.unwrap();
    tx.commit().await.unwrap();

    let secret_hex = &key.token[21..];
    assert_eq!(secret_hex.len(), 64);
    // The token, and the secret as text or as raw bytes (bytea is dumped as hex).
    assert!(database_holds(&db.admin_url, &[&key.token, secret_hex]).is_empty());
    // The check can find what is there: the key id and the stored hash.
    let hash_hex = hex::encode(key.hash);
    assert_eq!(
        database_holds(&db.admin_url, &[&key.key_id, &hash_hex]),
        [key.key_id.as_str(), hash_hex.as_str()]
    );
}
