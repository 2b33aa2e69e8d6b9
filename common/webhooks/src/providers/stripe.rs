//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 over
//! `"{t}.{raw body}"` keyed with the whole `whsec_...` string. `v0` entries are ignored.

use http::HeaderMap;
use serde::Deserialize;

use super::scheme::{
    check_timestamp, hex_tag, hmac_sha256, matches_any, raw_keys, required_header, Tags,
    MAX_SIGNATURES,
};
use super::{
    clean_id, parse_json, EventIdentity, IdentityError, SignatureError, SigningSecret, Text,
    VerifyOptions,
};

pub(crate) const SIGNATURE_HEADER: &str = "stripe-signature";

pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
    options: VerifyOptions,
) -> Result<(), SignatureError> {
    let (timestamp, signatures) = parse_t_v1(required_header(headers, SIGNATURE_HEADER)?)?;
    check_timestamp(timestamp, options)?;
    matches_any(
        raw_keys(secrets),
        &[timestamp.as_bytes(), b".", body],
        &signatures,
    )
}

/// Parses `t=<digits>,v1=<hex>,...` (Stripe and Whop legacy): the timestamp text and the v1
/// signatures, decoded. Unknown schemes (`v0`) are skipped.
pub(crate) fn parse_t_v1(value: &str) -> Result<(&str, Tags), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Tags::new();
    for item in value.split(',') {
        let (key, val) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" if timestamp.is_none() => timestamp = Some(val),
            "t" => return Err(SignatureError::Malformed),
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(hex_tag(val)?);
            }
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !signatures.is_empty() => Ok((t, signatures)),
        Some(_) => Err(SignatureError::Malformed),
        None => Err(SignatureError::TimestampInvalid),
    }
}

/// The `Stripe-Signature` value Stripe would send for `body` at `timestamp`.
pub(crate) fn sign(secret: &SigningSecret, body: &[u8], timestamp: i64) -> String {
    let t = timestamp.to_string();
    let mac = hmac_sha256(secret.expose().as_bytes(), &[t.as_bytes(), b".", body]);
    format!("t={t},v1={}", hex::encode(mac))
}

#[derive(Deserialize)]
struct StripeEvent<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    created: Option<i64>,
    #[serde(borrow)]
    data: Option<StripeData<'a>>,
}

#[derive(Deserialize)]
struct StripeData<'a> {
    #[serde(borrow)]
    object: Option<StripeObject<'a>>,
}

#[derive(Deserialize)]
struct StripeObject<'a> {
    #[serde(borrow)]
    object: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
}

pub(crate) fn identify<'a>(body: &'a [u8]) -> Result<EventIdentity<'a>, IdentityError> {
    let event: StripeEvent = parse_json(body)?;
    let object = event.data.and_then(|d| d.object);
    let (object_type, object_id) = match object {
        Some(o) => (o.object.and_then(clean_id), o.id.and_then(clean_id)),
        None => (None, None),
    };
    Ok(EventIdentity {
        event_id: event
            .id
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("id"))?,
        event_type: event
            .kind
            .and_then(clean_id)
            .ok_or(IdentityError::MissingField("type"))?,
        object_type,
        object_id,
        occurred_at_ms: event.created.and_then(|s| s.checked_mul(1000)),
        body_is_json: true,
    })
}

/// Stripe in the provider table.
pub(crate) struct Stripe;

impl super::ProviderSpec for Stripe {
    const DEMO_SECRET: &'static str = "whsec_local_demo_stripe_secret_not_for_production";

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        verify(headers, body, secrets, options)
    }

    fn identify<'a>(
        _headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Result<EventIdentity<'a>, IdentityError> {
        identify(body)
    }

    fn sign(
        secret: &SigningSecret,
        body: &[u8],
        timestamp: i64,
        _event_id: &str,
    ) -> Vec<(String, String)> {
        vec![(SIGNATURE_HEADER.to_owned(), sign(secret, body, timestamp))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, NOW, OPTS};
    use crate::providers::Provider;

    const SECRET: &str = "whsec_test_stripe_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.payment_failed","created":1700000000,"data":{"object":{"object":"invoice","id":"in_9","amount_due":500}}}"#;

    fn verify_with(header: &str, body: &[u8], secrets: &[&str]) -> Result<(), SignatureError> {
        let secrets: Vec<SigningSecret> = secrets.iter().map(|s| SigningSecret::new(*s)).collect();
        let refs: Vec<&SigningSecret> = secrets.iter().collect();
        Provider::Stripe.verify(&headers(&[(SIGNATURE_HEADER, header)]), body, &refs, OPTS)
    }

    #[test]
    fn a_signature_computed_as_stripe_documents_verifies() {
        // Independent of `sign`: HMAC-SHA256 over "{t}.{body}" keyed with the whole secret.
        let expected = hmac_sha256(SECRET.as_bytes(), &[format!("{NOW}.").as_bytes(), BODY]);
        let header = format!("t={NOW},v1={}", hex::encode(expected));
        assert_eq!(verify_with(&header, BODY, &[SECRET]), Ok(()));
        assert_eq!(sign(&SigningSecret::new(SECRET), BODY, NOW), header);
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_is_a_mismatch() {
        let header = sign(&SigningSecret::new(SECRET), BODY, NOW);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify_with(&header, &tampered, &[SECRET]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_with(&header, BODY, &["whsec_other"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_even_when_signed() {
        let stale = sign(&SigningSecret::new(SECRET), BODY, NOW - 301);
        let future = sign(&SigningSecret::new(SECRET), BODY, NOW + 301);
        assert_eq!(
            verify_with(&stale, BODY, &[SECRET]),
            Err(SignatureError::TimestampExpired)
        );
        assert_eq!(
            verify_with(&future, BODY, &[SECRET]),
            Err(SignatureError::TimestampInFuture)
        );
    }

    #[test]
    fn any_of_several_signatures_and_secrets_verifies_during_rotation() {
        let good = sign(&SigningSecret::new(SECRET), BODY, NOW);
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t={NOW},v1={},v0=abc,v1={good_v1}", "00".repeat(32));
        assert_eq!(verify_with(&header, BODY, &["whsec_old", SECRET]), Ok(()));
        assert_eq!(
            verify_with(&header, BODY, &["whsec_old"]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused_with_a_code() {
        let cases = [
            ("", SignatureError::Malformed),
            ("garbage", SignatureError::Malformed),
            ("v1=00", SignatureError::Malformed),
            (
                &*format!("v1={}", "00".repeat(32)),
                SignatureError::TimestampInvalid,
            ),
            (&*format!("t={NOW}"), SignatureError::Malformed),
            (
                &*format!("t={NOW},v0={}", "00".repeat(32)),
                SignatureError::Malformed,
            ),
            (&*format!("t={NOW},v1=zz"), SignatureError::Malformed),
            (
                &*format!("t=abc,v1={}", "00".repeat(32)),
                SignatureError::TimestampInvalid,
            ),
            (
                &*format!("t={NOW},t={NOW},v1={}", "00".repeat(32)),
                SignatureError::Malformed,
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(
                verify_with(header, BODY, &[SECRET]),
                Err(expected),
                "{header:?}"
            );
        }
        let too_many = format!("t={NOW}{}", format!(",v1={}", "00".repeat(32)).repeat(9));
        assert_eq!(
            verify_with(&too_many, BODY, &[SECRET]),
            Err(SignatureError::Malformed)
        );
        let missing =
            Provider::Stripe.verify(&headers(&[]), BODY, &[&SigningSecret::new(SECRET)], OPTS);
        assert_eq!(missing, Err(SignatureError::Missing));
    }

    #[test]
    fn identity_reads_id_type_object_and_time() {
        let identity = identify(BODY).unwrap();
        assert_eq!(
            identity,
            EventIdentity {
                event_id: "evt_1".into(),
                event_type: "invoice.payment_failed".into(),
                object_type: Some("invoice".into()),
                object_id: Some("in_9".into()),
                occurred_at_ms: Some(1_700_000_000_000),
                body_is_json: true,
            }
        );
    }

    #[test]
    fn identity_needs_an_id_and_a_type() {
        assert_eq!(
            identify(br#"{"type":"x"}"#),
            Err(IdentityError::MissingField("id"))
        );
        assert_eq!(
            identify(br#"{"id":"evt_1"}"#),
            Err(IdentityError::MissingField("type"))
        );
        assert_eq!(
            identify(br#"{"id":"","type":"x"}"#),
            Err(IdentityError::MissingField("id"))
        );
        assert_eq!(identify(b"not json"), Err(IdentityError::InvalidJson));
        assert_eq!(
            identify(br#"{"id":5,"type":"x"}"#),
            Err(IdentityError::InvalidJson)
        );
    }
}
