//! GitHub: `X-Hub-Signature-256: sha256=<hex>` over the raw body; delivery id
//! `X-GitHub-Delivery`; event name `X-GitHub-Event` (plus the body's `action`). No timestamp:
//! replays are caught by the dedupe on the delivery id.

use http::HeaderMap;

use super::VerifyOptions;
use serde::Deserialize;

use super::scheme::{header, hex_tag, hmac_sha256, matches_any, raw_keys, required_header};
use super::{
    clean_id, parse_json, EventIdentity, IdentityError, SignatureError, SigningSecret, Text,
};

pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";

pub(crate) fn verify(
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SigningSecret],
) -> Result<(), SignatureError> {
    let value = required_header(headers, SIGNATURE_HEADER)?;
    let hex_sig = value
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let signature = hex_tag(hex_sig)?;
    matches_any(raw_keys(secrets), &[body], &[signature])
}

pub(crate) fn sign(secret: &SigningSecret, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.expose().as_bytes(), &[body]))
    )
}

#[derive(Deserialize)]
struct Action<'a> {
    #[serde(borrow)]
    action: Option<Text<'a>>,
}

pub(crate) fn identify<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    let text = |name| header(headers, name).ok().flatten().and_then(clean_id);
    let event_id =
        text("x-github-delivery").ok_or(IdentityError::MissingField("X-GitHub-Delivery header"))?;
    let event =
        text("x-github-event").ok_or(IdentityError::MissingField("X-GitHub-Event header"))?;
    let action = parse_json::<Action>(body)?.action.and_then(clean_id);
    Ok(EventIdentity {
        event_id,
        event_type: match action {
            Some(action) => format!("{event}.{action}").into(),
            None => event,
        },
        body_is_json: true,
        ..EventIdentity::default()
    })
}

/// GitHub in the provider table.
pub(crate) struct Github;

impl super::ProviderSpec for Github {
    const CARRIED_HEADERS: &'static [&'static str] = &["x-github-event", "x-github-hook-id"];
    const DEMO_SECRET: &'static str = "local-demo-github-secret";

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
            ("x-github-delivery".to_owned(), event_id.to_owned()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{headers, OPTS};
    use crate::providers::Provider;

    fn check(sig: &str, body: &[u8], secret: &str) -> Result<(), SignatureError> {
        Provider::Github.verify(
            &headers(&[(SIGNATURE_HEADER, sig)]),
            body,
            &[&SigningSecret::new(secret)],
            OPTS,
        )
    }

    #[test]
    fn the_documented_vector_verifies() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            check(sig, b"Hello, World!", "It's a Secret to Everybody"),
            Ok(())
        );
        assert_eq!(
            sign(
                &SigningSecret::new("It's a Secret to Everybody"),
                b"Hello, World!"
            ),
            sig
        );
    }

    #[test]
    fn tampering_wrong_secret_and_malformed_headers_are_refused() {
        let sig = sign(&SigningSecret::new("s"), b"body");
        assert_eq!(check(&sig, b"bodY", "s"), Err(SignatureError::Mismatch));
        assert_eq!(check(&sig, b"body", "t"), Err(SignatureError::Mismatch));
        for bad in ["", "sha1=abcd", "sha256=", "sha256=zz", "sha256=abcd"] {
            assert_eq!(
                check(bad, b"body", "s"),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn identity_is_the_delivery_id_and_event_with_action() {
        let h = headers(&[
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-event", "issues"),
        ]);
        let identity = identify(&h, br#"{"action":"opened","issue":{"number":1}}"#).unwrap();
        assert_eq!(identity.event_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(identity.event_type, "issues.opened");
        let ping = identify(&h, br#"{"zen":"Keep it logically awesome."}"#).unwrap();
        assert_eq!(ping.event_type, "issues");
        assert_eq!(
            identify(&headers(&[("x-github-event", "push")]), b"{}"),
            Err(IdentityError::MissingField("X-GitHub-Delivery header"))
        );
    }
}
