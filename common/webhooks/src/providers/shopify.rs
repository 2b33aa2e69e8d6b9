//! Shopify: `X-Shopify-Hmac-Sha256: <base64>` over the raw body with the app's secret; id
//! `X-Shopify-Webhook-Id` (or `X-Shopify-Event-Id`); topic `X-Shopify-Topic`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::HeaderMap;

use super::VerifyOptions;
use serde::Deserialize;

use super::scheme::{base64_tag, header, hmac_sha256, matches_any, raw_keys, required_header};
use super::{
    clean_id, parse_json, type_prefix, EventIdentity, IdentityError, SignatureError, SigningSecret,
};

pub(crate) const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
) -> Result<(), SignatureError> {
    let signature = base64_tag(required_header(headers, SIGNATURE_HEADER)?)?;
    matches_any(raw_keys(secrets), &[body], &[signature])
}

pub(crate) fn sign(secret: &SigningSecret, body: &[u8]) -> String {
    B64.encode(hmac_sha256(secret.expose().as_bytes(), &[body]))
}

#[derive(Deserialize)]
struct Resource {
    id: Option<serde_json::Value>,
}

pub(crate) fn identify<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    let text = |name| header(headers, name).ok().flatten().and_then(clean_id);
    let event_id = text("x-shopify-webhook-id")
        .or_else(|| text("x-shopify-event-id"))
        .ok_or(IdentityError::MissingField("X-Shopify-Webhook-Id header"))?;
    let topic =
        text("x-shopify-topic").ok_or(IdentityError::MissingField("X-Shopify-Topic header"))?;
    let resource: Resource = parse_json(body)?;
    let object_id = match resource.id {
        Some(serde_json::Value::Number(n)) => Some(n.to_string().into()),
        Some(serde_json::Value::String(s)) => clean_id(s),
        _ => None,
    };
    let occurred_at_ms = text("x-shopify-triggered-at").and_then(|t| {
        time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339)
            .ok()
            .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
    });
    Ok(EventIdentity {
        event_id,
        object_type: object_id.as_ref().and(type_prefix(&topic, '/')),
        object_id,
        event_type: topic,
        occurred_at_ms,
        body_is_json: true,
    })
}

/// Shopify in the provider table.
pub(crate) struct Shopify;

impl super::ProviderSpec for Shopify {
    const CARRIED_HEADERS: &'static [&'static str] = &[
        "x-shopify-topic",
        "x-shopify-shop-domain",
        "x-shopify-api-version",
    ];
    const DEMO_SECRET: &'static str = "local-demo-shopify-secret";

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        _options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        verify(headers, body, secrets)
    }

    fn identify<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Result<EventIdentity<'a>, IdentityError> {
        identify(headers, body)
    }

    fn sign(
        secret: &SigningSecret,
        body: &[u8],
        _timestamp: i64,
        event_id: &str,
    ) -> Vec<(String, String)> {
        vec![
            (SIGNATURE_HEADER.to_owned(), sign(secret, body)),
            ("x-shopify-webhook-id".to_owned(), event_id.to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, OPTS};
    use crate::providers::Provider;

    fn check(sig: &str, body: &[u8], secret: &str) -> Result<(), SignatureError> {
        Provider::Shopify.verify(
            &headers(&[(SIGNATURE_HEADER, sig)]),
            body,
            &[&SigningSecret::new(secret)],
            OPTS,
        )
    }

    #[test]
    fn a_base64_hmac_of_the_raw_body_verifies() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a widely published value.
        let mac = hex::decode("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
            .unwrap();
        let sig = B64.encode(mac);
        assert_eq!(
            check(&sig, b"The quick brown fox jumps over the lazy dog", "key"),
            Ok(())
        );
        assert_eq!(
            sign(
                &SigningSecret::new("key"),
                b"The quick brown fox jumps over the lazy dog"
            ),
            sig
        );
    }

    #[test]
    fn tampering_wrong_secret_and_malformed_headers_are_refused() {
        let sig = sign(&SigningSecret::new("s"), b"{}");
        assert_eq!(check(&sig, b"{ }", "s"), Err(SignatureError::Mismatch));
        assert_eq!(check(&sig, b"{}", "x"), Err(SignatureError::Mismatch));
        for bad in ["", "***", "AAAA"] {
            assert_eq!(
                check(bad, b"{}", "s"),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn identity_reads_the_webhook_id_topic_and_resource_id() {
        let h = headers(&[
            (
                "x-shopify-webhook-id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-triggered-at", "2023-03-29T18:00:27.877041743Z"),
        ]);
        let identity = identify(
            &h,
            br#"{"id":820982911946154508,"email":"jon@example.com"}"#,
        )
        .unwrap();
        assert_eq!(identity.event_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(identity.event_type, "orders/create");
        assert_eq!(identity.object_type.as_deref(), Some("orders"));
        assert_eq!(identity.object_id.as_deref(), Some("820982911946154508"));
        assert_eq!(identity.occurred_at_ms, Some(1_680_112_827_877));
        let event_id_only = headers(&[
            ("x-shopify-event-id", "e1"),
            ("x-shopify-topic", "orders/paid"),
        ]);
        assert_eq!(identify(&event_id_only, b"{}").unwrap().event_id, "e1");
        assert_eq!(
            identify(&headers(&[("x-shopify-topic", "t")]), b"{}"),
            Err(IdentityError::MissingField("X-Shopify-Webhook-Id header"))
        );
    }
}
