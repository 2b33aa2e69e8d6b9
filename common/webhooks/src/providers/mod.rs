//! Providers: each knows its signature scheme and how to read an event's identity.
//!
//! Provider code never talks to AWS. Verification always runs on the raw request bytes before
//! anything parses them; MACs are compared in constant time (`Mac::verify_slice`).

mod clerk;
mod github;
mod scheme;
mod shopify;
mod slack;
mod standard;
mod stripe;
mod whop;

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
pub use scheme::{SignatureError, VerifyOptions};

/// What one provider module provides. Adding a provider is its module (with one of these),
/// one line in [`providers!`] below, its function folder, its template entry and its events
/// sample; a checklist test names whatever is missing.
pub(crate) trait ProviderSpec {
    /// Request headers the consumer may need (never signature headers), beyond
    /// [`COMMON_CARRIED_HEADERS`].
    const CARRIED_HEADERS: &'static [&'static str] = &[];
    /// The local-only secret of its demo source, in the shape the provider issues.
    const DEMO_SECRET: &'static str;

    fn verify(
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError>;

    fn identify<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Result<EventIdentity<'a>, IdentityError>;

    /// The headers the provider would send with `body`.
    fn sign(
        secret: &SigningSecret,
        body: &[u8],
        timestamp: i64,
        event_id: &str,
    ) -> Vec<(String, String)>;

    /// A response the provider expects instead of processing (Slack's `url_verification`).
    fn handshake(_body: &[u8]) -> Option<String> {
        None
    }

    /// Whether a secret has the shape this provider issues.
    fn check_secret(_secret: &str) -> Result<(), &'static str> {
        Ok(())
    }
}

/// Headers every provider's envelope carries when present.
pub const COMMON_CARRIED_HEADERS: [&str; 2] = ["content-type", "user-agent"];

/// The provider table: each line gives a variant, its route name and its module's spec. The
/// enum, [`Provider::ALL`], the names and every dispatch below are generated from it.
macro_rules! providers {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $spec:ty;)+) => {
        /// A provider Inlet can take webhooks from; the `{provider}` segment of the route.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Provider {
            $($(#[$doc])* $variant,)+
        }

        impl Provider {
            pub const ALL: [Provider; [$($name),+].len()] = [$(Provider::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Provider::$variant => $name,)+
                }
            }

            fn verify_with(
                self,
                headers: &HeaderMap,
                body: &[u8],
                secrets: &[&SigningSecret],
                options: VerifyOptions,
            ) -> Result<(), SignatureError> {
                match self {
                    $(Provider::$variant => <$spec>::verify(headers, body, secrets, options),)+
                }
            }

            /// Reads the event's identity from a verified request.
            pub fn identify<'a>(
                self,
                headers: &'a HeaderMap,
                body: &'a [u8],
            ) -> Result<EventIdentity<'a>, IdentityError> {
                match self {
                    $(Provider::$variant => <$spec>::identify(headers, body),)+
                }
            }

            /// A response the provider expects instead of processing (Slack's
            /// `url_verification`): the body to answer with, after the signature has been
            /// verified.
            pub fn handshake(self, body: &[u8]) -> Option<String> {
                match self {
                    $(Provider::$variant => <$spec>::handshake(body),)+
                }
            }

            /// Signs `body` as the provider would: the headers to send. For `inlet send`,
            /// sample events and tests. `event_id` is used by schemes that sign it (Standard
            /// Webhooks, Svix) or send it in a header (GitHub, Shopify).
            pub fn sign(
                self,
                secret: &SigningSecret,
                body: &[u8],
                timestamp: i64,
                event_id: &str,
            ) -> Vec<(String, String)> {
                match self {
                    $(Provider::$variant => <$spec>::sign(secret, body, timestamp, event_id),)+
                }
            }

            fn check_secret_shape(self, secret: &str) -> Result<(), &'static str> {
                match self {
                    $(Provider::$variant => <$spec>::check_secret(secret),)+
                }
            }

            /// The request headers this provider's envelopes carry, beyond the common ones.
            pub fn carried_headers(self) -> &'static [&'static str] {
                match self {
                    $(Provider::$variant => <$spec>::CARRIED_HEADERS,)+
                }
            }

            /// The local-only secret of this provider's demo source.
            pub fn demo_secret(self) -> SigningSecret {
                SigningSecret::new(match self {
                    $(Provider::$variant => <$spec>::DEMO_SECRET,)+
                })
            }
        }
    };
}

providers! {
    Stripe => "stripe", stripe::Stripe;
    Clerk => "clerk", clerk::Clerk;
    Whop => "whop", whop::Whop;
    Github => "github", github::Github;
    Shopify => "shopify", shopify::Shopify;
    Slack => "slack", slack::Slack;
    /// Any Standard Webhooks sender (webhook-* or svix-* headers).
    Standard => "standard", standard::Standard;
}

impl Provider {
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Checks the request's signature with any of `secrets` (several during a rotation).
    pub fn verify(
        self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[&SigningSecret],
        options: VerifyOptions,
    ) -> Result<(), SignatureError> {
        if secrets.is_empty() {
            return Err(SignatureError::NoActiveSecret);
        }
        self.verify_with(headers, body, secrets, options)
    }

    /// A new random signing secret (256 bits) in the shape this provider's verifier expects.
    pub fn generate_secret(self) -> String {
        use base64::Engine;
        let bytes = inlet_core::crypto::random_bytes(32);
        match self {
            Provider::Clerk | Provider::Standard | Provider::Stripe => format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
            Provider::Whop => format!("ws_{}", hex::encode(bytes)),
            _ => hex::encode(bytes),
        }
    }

    /// Whether `secret` has the shape this provider issues, checked when a source is saved so a
    /// typo is caught then, not as a stream of 401s.
    pub fn check_secret(self, secret: &str) -> Result<(), &'static str> {
        if secret.is_empty() || secret.len() > 1024 {
            return Err("a signing secret must be 1-1024 characters");
        }
        self.check_secret_shape(secret)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A webhook signing secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: for computing MACs and for encrypting at rest, nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// What an event is, read from a verified request: the dedupe key, routing and ordering data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventIdentity<'a> {
    /// The provider's id for this event (the idempotency key). Borrowed from the request
    /// wherever the request holds it verbatim.
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    /// The object the event is about, for per-object ordering (`customer`, `cus_123`).
    pub object_type: Option<Cow<'a, str>>,
    pub object_id: Option<Cow<'a, str>>,
    /// When the provider says the event happened, in Unix milliseconds.
    pub occurred_at_ms: Option<i64>,
    /// The whole body was parsed as one JSON document by [`parse_json`], so it is valid UTF-8
    /// JSON, byte for byte, and an envelope can carry it verbatim.
    pub body_is_json: bool,
}

/// Why an event's identity could not be read: a 400 with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("the body is not valid JSON")]
    InvalidJson,
    #[error("the body is not valid form data")]
    InvalidForm,
    #[error("the event has no {0}")]
    MissingField(&'static str),
}

impl IdentityError {
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::InvalidJson => "invalid_json",
            IdentityError::InvalidForm => "invalid_form",
            IdentityError::MissingField(_) => "missing_event_field",
        }
    }
}

/// Parses a whole JSON body. JSON is UTF-8 (RFC 8259), so the encoding is checked once, up
/// front, and the reader then skips its per-string checks; a body that is not UTF-8 is not JSON.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    body: &'a [u8],
) -> Result<T, IdentityError> {
    let text = std::str::from_utf8(body).map_err(|_| IdentityError::InvalidJson)?;
    serde_json::from_str(text).map_err(|_| IdentityError::InvalidJson)
}

/// Bounded, visible-ASCII identifiers only: ids travel in DynamoDB keys and SQS attributes.
pub(crate) fn clean_id<'a>(value: impl Into<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    let value = value.into();
    let ok = !value.is_empty() && value.len() <= 256 && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(value)
}

/// The part of an event type before `separator` (`user.created` -> `user`), borrowed when the
/// type is.
pub(crate) fn type_prefix<'a>(event_type: &Cow<'a, str>, separator: char) -> Option<Cow<'a, str>> {
    match event_type {
        Cow::Borrowed(text) => text
            .split_once(separator)
            .map(|(head, _)| Cow::Borrowed(head)),
        Cow::Owned(text) => text
            .split_once(separator)
            .map(|(head, _)| Cow::Owned(head.to_owned())),
    }
}

/// A JSON string field, borrowed from the body when it has no escapes. serde borrows a `Cow`
/// only when it is the field's own type, never inside an `Option`: optional fields use this.
#[derive(serde::Deserialize)]
pub(crate) struct Text<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<Text<'a>> for Cow<'a, str> {
    fn from(text: Text<'a>) -> Self {
        text.0
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod properties {
    //! Nothing a client sends can panic a verifier or an identity reader.
    use http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    /// Every header any provider reads.
    const NAMES: [&str; 17] = [
        "stripe-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-whop-signature",
        "x-hub-signature-256",
        "x-github-delivery",
        "x-github-event",
        "x-shopify-hmac-sha256",
        "x-shopify-webhook-id",
        "x-shopify-topic",
        "x-shopify-triggered-at",
        "x-slack-signature",
        "x-slack-request-timestamp",
    ];

    fn header_map(values: &[Vec<u8>]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in NAMES.iter().zip(values) {
            // Bytes HTTP itself cannot carry never reach a Lambda; everything else may.
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.insert(HeaderName::from_static(name), value);
            }
        }
        map
    }

    /// Arbitrary bytes, biased towards the shapes the parsers look for.
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..96),
            "(t=[0-9]{0,12},)?(v[01]=[0-9a-f]{0,70},?){0,10}".prop_map(String::into_bytes),
            "(v1,[A-Za-z0-9+/=]{0,50} ?){0,10}".prop_map(String::into_bytes),
            "(sha256=|v0=)[0-9a-fA-F]{0,66}".prop_map(String::into_bytes),
            "[0-9]{0,20}".prop_map(String::into_bytes),
        ]
    }

    fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            // JSON with a byte that is not UTF-8 inside a string no identity reads.
            (r#"\{"id":"[a-z]{1,8}","type":"[a-z.]{1,8}","event_id":"e1","x":"[a-z]{0,4}"#, any::<u8>())
                .prop_map(|(head, byte)| [head.as_bytes(), &[0x80 | byte], b"\"}"].concat()),
            r#"\{("(id|type|created|data|event_id|action|timestamp|payload|event)":("[a-z_.]{0,8}"|[0-9]{1,20}|\{\}|null),?){0,6}\}"#.prop_map(String::into_bytes),
            "((command|trigger_id|payload|text)=[%A-Za-z0-9{}]{0,20}&?){0,4}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn no_header_or_body_panics_any_provider(
            values in proptest::collection::vec(header_bytes(), NAMES.len()),
            body in body_bytes(),
            now in any::<i64>(),
            tolerance in any::<i64>(),
        ) {
            let headers = header_map(&values);
            let secrets = [SigningSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), SigningSecret::new("raw")];
            let refs: Vec<&SigningSecret> = secrets.iter().collect();
            let options = VerifyOptions { now, tolerance_secs: tolerance };
            for provider in Provider::ALL {
                let verified = provider.verify(&headers, &body, &refs, options);
                // Random input never verifies by accident.
                prop_assert!(verified.is_err());
                // What the envelope relies on to carry a body verbatim.
                if let Ok(identity) = provider.identify(&headers, &body) {
                    if identity.body_is_json {
                        let text = std::str::from_utf8(&body);
                        prop_assert!(text.is_ok(), "{}", provider);
                        prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok(), "{}", provider);
                    }
                }
                let _ = provider.handshake(&body);
            }
        }

        #[test]
        fn a_signed_request_verifies_and_any_flipped_body_bit_does_not(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            flip in any::<proptest::sample::Index>(),
        ) {
            let now = 1_700_000_000;
            let options = VerifyOptions { now, tolerance_secs: 300 };
            for provider in Provider::ALL {
                let secret = SigningSecret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
                let mut headers = HeaderMap::new();
                for (name, value) in provider.sign(&secret, &body, now, "msg_1") {
                    headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(&value).unwrap());
                }
                prop_assert_eq!(provider.verify(&headers, &body, &[&secret], options), Ok(()), "{}", provider);
                let mut tampered = body.clone();
                let i = flip.index(tampered.len());
                tampered[i] ^= 0x01;
                prop_assert_eq!(provider.verify(&headers, &tampered, &[&secret], options), Err(SignatureError::Mismatch), "{}", provider);
            }
        }
    }
}
