//! Standard Webhooks (and Svix, its origin): `{p}id`, `{p}timestamp`,
//! `{p}signature: v1,<base64> [v1,<base64> ...]` with `{p}` = `webhook-` or `svix-`;
//! HMAC-SHA256 over `"{id}.{timestamp}.{raw body}"`, keyed with the base64 after `whsec_`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use http::HeaderMap;
use serde::Deserialize;

use super::scheme::{
    base64_tag, check_timestamp, header, hmac_sha256, matches_any, required_header, Tags,
    MAX_SIGNATURES,
};
use super::{
    clean_id, parse_json, type_prefix, EventIdentity, IdentityError, SignatureError, SigningSecret,
    Text, VerifyOptions,
};

/// The two header families: the standard's and Svix's (which Clerk sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Headers {
    Webhook,
    Svix,
}

impl Headers {
    fn name(self, suffix: &str) -> String {
        match self {
            Headers::Webhook => format!("webhook-{suffix}"),
            Headers::Svix => format!("svix-{suffix}"),
        }
    }

    /// Which family a request uses, preferring the standard's.
    pub(crate) fn detect(headers: &HeaderMap) -> Option<Headers> {
        if headers.contains_key("webhook-signature") {
            Some(Headers::Webhook)
        } else if headers.contains_key("svix-signature") {
            Some(Headers::Svix)
        } else {
            None
        }
    }
}

/// The key bytes of a `whsec_<base64>` secret (the prefix is optional).
pub(crate) fn decode_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(encoded).ok().filter(|k| !k.is_empty())
}

/// Any Standard Webhooks sender: webhook-* or svix-* headers, base64 keys.
pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    let family = Headers::detect(headers).ok_or(SignatureError::Missing)?;
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| decode_key(s.expose()))
        .collect();
    verify_with_keys(headers, family, body, keys, options)
}

/// Svix senders such as Clerk: svix-* headers only.
pub(crate) fn verify_svix(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| decode_key(s.expose()))
        .collect();
    verify_with_keys(headers, Headers::Svix, body, keys, options)
}

/// The scheme with keys already derived (Whop uses the raw secret bytes as the key).
pub(crate) fn verify_with_keys<K: AsRef<[u8]>>(
    headers: &HeaderMap,
    family: Headers,
    body: &[u8],
    keys: Vec<K>,
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    let signatures = parse_signatures(required_header(headers, &family.name("signature"))?)?;
    let id = required_header(headers, &family.name("id"))?;
    if id.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let timestamp =
        header(headers, &family.name("timestamp"))?.ok_or(SignatureError::TimestampInvalid)?;
    check_timestamp(timestamp, options)?;
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    matches_any(keys, &signed, &signatures)
}

/// `v1,<b64> v1,<b64>`: the v1 signatures, decoded; other versions are skipped.
pub(crate) fn parse_signatures(value: &str) -> Result<Tags, SignatureError> {
    let mut out = Tags::new();
    for item in value.split_ascii_whitespace() {
        let (version, encoded) = item.split_once(',').ok_or(SignatureError::Malformed)?;
        if version != "v1" {
            continue;
        }
        if out.len() == MAX_SIGNATURES {
            return Err(SignatureError::Malformed);
        }
        out.push(base64_tag(encoded)?);
    }
    if out.is_empty() {
        return Err(SignatureError::Malformed);
    }
    Ok(out)
}

/// The headers a sender would add: (id, timestamp, signature) for `key`.
pub(crate) fn sign_with_key(
    family: Headers,
    key: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let t = timestamp.to_string();
    let mac = hmac_sha256(key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]);
    vec![
        (family.name("id"), id.to_owned()),
        (family.name("timestamp"), t),
        (family.name("signature"), format!("v1,{}", B64.encode(mac))),
    ]
}

/// The common payload shape: `{"type": ..., "timestamp": ..., "data": {"id":..., "object":...}}`.
#[derive(Deserialize)]
pub(crate) struct Payload<'a> {
    #[serde(borrow, rename = "type")]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub data: Option<PayloadData<'a>>,
    /// RFC 3339 text (Standard Webhooks, Whop) or Unix milliseconds (Clerk).
    pub timestamp: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(crate) struct PayloadData<'a> {
    #[serde(borrow)]
    pub id: Option<Text<'a>>,
    #[serde(borrow)]
    pub object: Option<Text<'a>>,
}

/// Identity from the id header and the standard payload shape.
pub(crate) fn identify_payload<'a>(
    headers: &'a HeaderMap,
    family: Headers,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    let event_id = header(headers, &family.name("id"))
        .ok()
        .flatten()
        .and_then(clean_id)
        .ok_or(IdentityError::MissingField("event id header"))?;
    let payload: Payload = parse_json(body)?;
    let event_type = payload
        .kind
        .and_then(clean_id)
        .ok_or(IdentityError::MissingField("type"))?;
    let (object_id, object_type) = match payload.data {
        Some(d) => (d.id.and_then(clean_id), d.object.and_then(clean_id)),
        None => (None, None),
    };
    // Without an explicit object kind, the type's prefix names it: "user.created" -> "user".
    let object_type = object_type.or_else(|| type_prefix(&event_type, '.'));
    Ok(EventIdentity {
        event_id,
        occurred_at_ms: payload.timestamp.as_ref().and_then(timestamp_ms),
        event_type,
        object_type: object_id.as_ref().and(object_type),
        object_id,
        body_is_json: true,
    })
}

/// A payload timestamp as Unix milliseconds: integer milliseconds or RFC 3339 text.
fn timestamp_ms(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
        }
        _ => None,
    }
}

pub(crate) fn identify<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    identify_payload(
        headers,
        Headers::detect(headers).unwrap_or(Headers::Webhook),
        body,
    )
}

/// Whether a secret is `whsec_` followed by base64 (checked when a source is saved).
pub(crate) fn check_secret(secret: &str) -> Result<(), &'static str> {
    decode_key(secret)
        .map(|_| ())
        .ok_or("expected whsec_ followed by base64")
}

/// Any Standard Webhooks sender in the provider table.
pub(crate) struct Standard;

impl super::ProviderSpec for Standard {
    // base64 of "local-demo-svix-key-not-for-prod" (32 bytes)
    const DEMO_SECRET: &'static str = "whsec_bG9jYWwtZGVtby1zdml4LWtleS1ub3QtZm9yLXByb2Q=";

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
        sign_with_key(
            Headers::Webhook,
            &decode_key(secret.expose()).unwrap_or_default(),
            event_id,
            timestamp,
            body,
        )
    }

    fn check_secret(secret: &str) -> Result<(), &'static str> {
        check_secret(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::headers;
    use crate::providers::Provider;

    // The Standard Webhooks specification's test vector.
    const SPEC_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const AT_SPEC: VerifyOptions = VerifyOptions {
        now: SPEC_TS,
        tolerance_secs: 300,
    };

    fn spec_headers(prefix: &str, sig: &str, ts: i64) -> HeaderMap {
        headers(&[
            (&format!("{prefix}id"), SPEC_ID),
            (&format!("{prefix}timestamp"), &ts.to_string()),
            (&format!("{prefix}signature"), sig),
        ])
    }

    fn check(
        provider: Provider,
        h: &HeaderMap,
        body: &[u8],
        secrets: &[&str],
        opts: VerifyOptions,
    ) -> Result<(), SignatureError> {
        let secrets: Vec<SigningSecret> = secrets.iter().map(|s| SigningSecret::new(*s)).collect();
        let refs: Vec<&SigningSecret> = secrets.iter().collect();
        provider.verify(h, body, &refs, opts)
    }

    #[test]
    fn the_specification_vector_verifies_with_either_header_family() {
        for prefix in ["webhook-", "svix-"] {
            let h = spec_headers(prefix, SPEC_SIG, SPEC_TS);
            assert_eq!(
                check(Provider::Standard, &h, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
                Ok(()),
                "{prefix}"
            );
        }
        let svix = spec_headers("svix-", SPEC_SIG, SPEC_TS);
        assert_eq!(
            check(Provider::Clerk, &svix, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
            Ok(())
        );
        let key = decode_key(SPEC_KEY).unwrap();
        let signed = sign_with_key(Headers::Webhook, &key, SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(signed[2].1, SPEC_SIG);
    }

    #[test]
    fn clerk_does_not_accept_webhook_headers() {
        let h = spec_headers("webhook-", SPEC_SIG, SPEC_TS);
        assert_eq!(
            check(Provider::Clerk, &h, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn tampered_body_wrong_secret_or_wrong_id_is_a_mismatch() {
        let h = spec_headers("webhook-", SPEC_SIG, SPEC_TS);
        assert_eq!(
            check(
                Provider::Standard,
                &h,
                br#"{"test": 2432232315}"#,
                &[SPEC_KEY],
                AT_SPEC
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                Provider::Standard,
                &h,
                SPEC_BODY,
                &["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
                AT_SPEC
            ),
            Err(SignatureError::Mismatch)
        );
        let mut other_id = h.clone();
        other_id.insert("webhook-id", "msg_other".parse().unwrap());
        assert_eq!(
            check(
                Provider::Standard,
                &other_id,
                SPEC_BODY,
                &[SPEC_KEY],
                AT_SPEC
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let h = spec_headers("webhook-", SPEC_SIG, SPEC_TS);
        let later = VerifyOptions {
            now: SPEC_TS + 301,
            tolerance_secs: 300,
        };
        let earlier = VerifyOptions {
            now: SPEC_TS - 301,
            tolerance_secs: 300,
        };
        assert_eq!(
            check(Provider::Standard, &h, SPEC_BODY, &[SPEC_KEY], later),
            Err(SignatureError::TimestampExpired)
        );
        assert_eq!(
            check(Provider::Standard, &h, SPEC_BODY, &[SPEC_KEY], earlier),
            Err(SignatureError::TimestampInFuture)
        );
    }

    #[test]
    fn several_signatures_and_secrets_allow_rotation() {
        let sig = format!("v1,{} v1a,xyz {SPEC_SIG}", B64.encode([0u8; 32]));
        let h = spec_headers("webhook-", &sig, SPEC_TS);
        assert_eq!(
            check(
                Provider::Standard,
                &h,
                SPEC_BODY,
                &["whsec_AAAA", SPEC_KEY],
                AT_SPEC
            ),
            Ok(())
        );
    }

    #[test]
    fn malformed_signature_headers_are_refused() {
        for bad in ["", "v1", "v1,", "v1,not-base64!", "v2,abcd", "v1,AAAA"] {
            let h = spec_headers("webhook-", bad, SPEC_TS);
            let result = check(Provider::Standard, &h, SPEC_BODY, &[SPEC_KEY], AT_SPEC);
            assert!(
                matches!(
                    result,
                    Err(SignatureError::Malformed | SignatureError::Missing)
                ),
                "{bad:?}: {result:?}"
            );
        }
        let many = [SPEC_SIG; 9].join(" ");
        let h = spec_headers("webhook-", &many, SPEC_TS);
        assert_eq!(
            check(Provider::Standard, &h, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
            Err(SignatureError::Malformed)
        );
        let no_ts = headers(&[("webhook-id", SPEC_ID), ("webhook-signature", SPEC_SIG)]);
        assert_eq!(
            check(Provider::Standard, &no_ts, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
            Err(SignatureError::TimestampInvalid)
        );
        let no_id = headers(&[
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", SPEC_SIG),
        ]);
        assert_eq!(
            check(Provider::Standard, &no_id, SPEC_BODY, &[SPEC_KEY], AT_SPEC),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn identity_uses_the_id_header_and_the_payload() {
        let h = spec_headers("webhook-", SPEC_SIG, SPEC_TS);
        let body = br#"{"type":"invoice.paid","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"inv_1"}}"#;
        let identity = identify(&h, body).unwrap();
        assert_eq!(identity.event_id, SPEC_ID);
        assert_eq!(identity.event_type, "invoice.paid");
        assert_eq!(identity.object_type.as_deref(), Some("invoice"));
        assert_eq!(identity.object_id.as_deref(), Some("inv_1"));
        assert_eq!(identity.occurred_at_ms, Some(1_667_507_170_344));
        assert_eq!(
            identify(&h, br#"{"data":{}}"#),
            Err(IdentityError::MissingField("type"))
        );
        assert_eq!(identify(&h, b"\xff\xfe"), Err(IdentityError::InvalidJson));
    }
}
