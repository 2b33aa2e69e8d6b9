//! Whop. Current: Standard Webhooks headers, but the key is the literal bytes of the whole
//! `ws_...` secret (no base64). Legacy: `x-whop-signature: t=<unix>,v1=<hex>` over
//! `"{t}.{raw body}"` with the raw secret.

use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::scheme::{check_timestamp, matches_any, raw_keys, required_header};
use super::standard::{self, Headers};
use super::stripe::parse_t_v1;
use super::{
    clean_id, parse_json, type_prefix, EventIdentity, IdentityError, SignatureError, SigningSecret,
    Text, VerifyOptions,
};

pub(crate) const LEGACY_HEADER: &str = "x-whop-signature";

pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    if headers.contains_key("webhook-signature") {
        return standard::verify_with_keys(
            headers,
            Headers::Webhook,
            body,
            raw_keys(secrets).collect(),
            options,
        );
    }
    let (timestamp, signatures) = parse_t_v1(required_header(headers, LEGACY_HEADER)?)?;
    check_timestamp(timestamp, options)?;
    matches_any(
        raw_keys(secrets),
        &[timestamp.as_bytes(), b".", body],
        &signatures,
    )
}

/// Headers for the current scheme.
pub(crate) fn sign(
    secret: &SigningSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    standard::sign_with_key(
        Headers::Webhook,
        secret.expose().as_bytes(),
        id,
        timestamp,
        body,
    )
}

/// The legacy header value.
#[cfg(test)]
pub(crate) fn sign_legacy(secret: &SigningSecret, timestamp: i64, body: &[u8]) -> String {
    let t = timestamp.to_string();
    let mac = super::scheme::hmac_sha256(secret.expose().as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

#[derive(Deserialize)]
struct LegacyPayload<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    action: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<standard::PayloadData<'a>>,
}

pub(crate) fn identify<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    if headers.contains_key("webhook-id") {
        return standard::identify_payload(headers, Headers::Webhook, body);
    }
    // Legacy events carry `action` and no delivery id: the body's own id if present, else a
    // digest of the body (a provider retry resends the same bytes, so it dedupes).
    let payload: LegacyPayload = parse_json(body)?;
    let event_type = payload
        .action
        .and_then(clean_id)
        .ok_or(IdentityError::MissingField("action"))?;
    let event_id = payload.id.and_then(clean_id).unwrap_or_else(|| {
        format!("whop_legacy_{}", &hex::encode(Sha256::digest(body))[..32]).into()
    });
    let object_id = payload.data.and_then(|d| d.id).and_then(clean_id);
    Ok(EventIdentity {
        event_id,
        object_type: object_id.as_ref().and(type_prefix(&event_type, '.')),
        object_id,
        event_type,
        occurred_at_ms: None,
        body_is_json: true,
    })
}

/// Whop in the provider table.
pub(crate) struct Whop;

impl super::ProviderSpec for Whop {
    const DEMO_SECRET: &'static str = "ws_local_demo_whop_secret_not_for_production";

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        verify(headers, body, secrets, options)
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
        timestamp: i64,
        event_id: &str,
    ) -> Vec<(String, String)> {
        sign(secret, event_id, timestamp, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::scheme::hmac_sha256;
    use crate::providers::test_support::{headers, NOW, OPTS};
    use crate::providers::Provider;

    const SECRET: &str = "ws_4f1b2c3d4e5f60718293a4b5c6d7e8f9";
    const BODY: &[u8] = br#"{"id":"evt_w1","api_version":"v1","type":"payment.failed","timestamp":"2025-06-01T12:00:00Z","company_id":"biz_123","data":{"id":"pay_77","membership":{"id":"mem_5"}}}"#;

    fn check(h: &HeaderMap, body: &[u8], secret: &str) -> Result<(), SignatureError> {
        Provider::Whop.verify(h, body, &[&SigningSecret::new(secret)], OPTS)
    }

    fn to_headers(pairs: &[(String, String)]) -> HeaderMap {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers(&refs)
    }

    #[test]
    fn current_scheme_keys_hmac_with_the_literal_secret_bytes() {
        // Independently computed: base64(HMAC-SHA256(b"ws_...", "{id}.{t}.{body}")).
        use base64::Engine;
        let mac = hmac_sha256(
            SECRET.as_bytes(),
            &[b"msg_1.", NOW.to_string().as_bytes(), b".", BODY],
        );
        let sig = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        let h = headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", &NOW.to_string()),
            ("webhook-signature", &sig),
        ]);
        assert_eq!(check(&h, BODY, SECRET), Ok(()));
        assert_eq!(
            to_headers(&sign(&SigningSecret::new(SECRET), "msg_1", NOW, BODY)),
            h
        );
        // A Standard Webhooks verifier would base64-decode the key and fail: Whop is not that.
        assert_eq!(
            Provider::Standard.verify(&h, BODY, &[&SigningSecret::new(SECRET)], OPTS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn legacy_scheme_verifies_and_refuses_tampering_and_stale_timestamps() {
        let h = headers(&[(
            LEGACY_HEADER,
            &sign_legacy(&SigningSecret::new(SECRET), NOW, BODY),
        )]);
        assert_eq!(check(&h, BODY, SECRET), Ok(()));
        assert_eq!(check(&h, b"{}", SECRET), Err(SignatureError::Mismatch));
        assert_eq!(check(&h, BODY, "ws_wrong"), Err(SignatureError::Mismatch));
        let stale = headers(&[(
            LEGACY_HEADER,
            &sign_legacy(&SigningSecret::new(SECRET), NOW - 400, BODY),
        )]);
        assert_eq!(
            check(&stale, BODY, SECRET),
            Err(SignatureError::TimestampExpired)
        );
        assert_eq!(
            check(&headers(&[(LEGACY_HEADER, "t=1")]), BODY, SECRET),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&headers(&[]), BODY, SECRET),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn current_events_are_identified_by_webhook_id_and_type() {
        let h = to_headers(&sign(&SigningSecret::new(SECRET), "msg_1", NOW, BODY));
        let identity = identify(&h, BODY).unwrap();
        assert_eq!(identity.event_id, "msg_1");
        assert_eq!(identity.event_type, "payment.failed");
        assert_eq!(identity.object_type.as_deref(), Some("payment"));
        assert_eq!(identity.object_id.as_deref(), Some("pay_77"));
        assert_eq!(identity.occurred_at_ms, Some(1_748_779_200_000));
    }

    #[test]
    fn legacy_events_without_an_id_dedupe_on_their_bytes() {
        let body = br#"{"action":"membership.went_valid","data":{"id":"mem_5"}}"#;
        let no_headers = headers(&[]);
        let one = identify(&no_headers, body).unwrap();
        let two = identify(&no_headers, body).unwrap();
        assert_eq!(one.event_id, two.event_id);
        assert!(one.event_id.starts_with("whop_legacy_"));
        assert_eq!(one.event_type, "membership.went_valid");
        assert_eq!(
            identify(&headers(&[]), br#"{"data":{}}"#),
            Err(IdentityError::MissingField("action"))
        );
    }
}
