//! Clerk sends through Svix: svix-* headers, `whsec_` base64 keys (verified in `standard`).
//! Payload: `{"type":"user.created","timestamp":<ms>,"object":"event","data":{"id":"user_..","object":"user",..}}`.

use http::HeaderMap;

use super::standard::{self, identify_payload, Headers};
use super::{EventIdentity, IdentityError, SignatureError, SigningSecret, VerifyOptions};

pub(crate) fn identify<'a>(
    headers: &'a HeaderMap,
    body: &'a [u8],
) -> Result<EventIdentity<'a>, IdentityError> {
    identify_payload(headers, Headers::Svix, body)
}

/// Clerk in the provider table: Svix's scheme and headers.
pub(crate) struct Clerk;

impl super::ProviderSpec for Clerk {
    // base64 of "local-demo-svix-key-not-for-prod" (32 bytes)
    const DEMO_SECRET: &'static str = "whsec_bG9jYWwtZGVtby1zdml4LWtleS1ub3QtZm9yLXByb2Q=";

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        standard::verify_svix(headers, body, secrets, options)
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
        standard::sign_with_key(
            Headers::Svix,
            &standard::decode_key(secret.expose()).unwrap_or_default(),
            event_id,
            timestamp,
            body,
        )
    }

    fn check_secret(secret: &str) -> Result<(), &'static str> {
        standard::check_secret(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::headers;

    #[test]
    fn a_clerk_user_created_event_is_identified() {
        let h = headers(&[
            ("svix-id", "msg_2abc"),
            ("svix-timestamp", "1700000000"),
            ("svix-signature", "v1,x"),
        ]);
        let body = br#"{"data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC","object":"user","email_addresses":[]},"object":"event","type":"user.created","timestamp":1654012591835}"#;
        let identity = identify(&h, body).unwrap();
        assert_eq!(identity.event_id, "msg_2abc");
        assert_eq!(identity.event_type, "user.created");
        assert_eq!(identity.object_type.as_deref(), Some("user"));
        assert_eq!(
            identity.object_id.as_deref(),
            Some("user_29w83sxmDNGwOuEthce5gg56FcC")
        );
        assert_eq!(identity.occurred_at_ms, Some(1_654_012_591_835));
    }

    #[test]
    fn a_clerk_event_without_svix_id_is_refused() {
        let body = br#"{"type":"user.created","data":{"id":"user_1"}}"#;
        assert_eq!(
            identify(&headers(&[]), body),
            Err(IdentityError::MissingField("event id header"))
        );
    }
}
