//! Envelope v1: the SQS message body between intake and the consumers. Documented in
//! docs/ENVELOPE.md; consumers reject any other version as a permanent error.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const ENVELOPE_VERSION: u32 = 1;

/// Request headers a consumer may need; signature headers are never carried.
pub const CARRIED_HEADERS: [&str; 9] = [
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-hook-id",
    "x-shopify-topic",
    "x-shopify-shop-domain",
    "x-shopify-api-version",
    "x-slack-retry-num",
    "x-slack-retry-reason",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub source_id: String,
    pub provider: String,
    pub company_id: String,
    pub event_id: String,
    pub event_type: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// RFC 3339, UTC, when the provider says the event happened.
    pub occurred_at: Option<String>,
    /// RFC 3339, UTC, when intake accepted it.
    pub received_at: String,
    /// The raw request body, unchanged: as text when it is UTF-8, else base64.
    pub body: String,
    pub body_encoding: BodyEncoding,
    pub headers: BTreeMap<String, String>,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    Utf8,
    Base64,
}

impl Envelope {
    /// Encodes raw bytes for the `body` field without changing a byte of them.
    pub fn encode_body(raw: &[u8]) -> (String, BodyEncoding) {
        match std::str::from_utf8(raw) {
            Ok(text) => (text.to_owned(), BodyEncoding::Utf8),
            Err(_) => (B64.encode(raw), BodyEncoding::Base64),
        }
    }

    /// The raw request body, as the provider sent it.
    pub fn raw_body(&self) -> Result<Vec<u8>, base64::DecodeError> {
        match self.body_encoding {
            BodyEncoding::Utf8 => Ok(self.body.clone().into_bytes()),
            BodyEncoding::Base64 => B64.decode(&self.body),
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC text (`2024-05-01T12:00:00.123Z`).
pub fn rfc3339_ms(unix_ms: i64) -> Option<String> {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bodies_travel_as_text_and_others_as_base64_unchanged() {
        for raw in [&b"{\"a\":1}"[..], b"\xff\x00\xfe binary", b""] {
            let (body, body_encoding) = Envelope::encode_body(raw);
            let envelope = Envelope {
                version: 1,
                source_id: "s".into(),
                provider: "stripe".into(),
                company_id: "c".into(),
                event_id: "e".into(),
                event_type: "t".into(),
                object_type: None,
                object_id: None,
                occurred_at: None,
                received_at: "2024-01-01T00:00:00Z".into(),
                body,
                body_encoding,
                headers: BTreeMap::new(),
                trace_id: None,
            };
            let json = serde_json::to_string(&envelope).unwrap();
            let back: Envelope = serde_json::from_str(&json).unwrap();
            assert_eq!(back.raw_body().unwrap(), raw);
        }
    }

    #[test]
    fn milliseconds_format_as_rfc3339_utc() {
        assert_eq!(
            rfc3339_ms(1_700_000_000_123).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(rfc3339_ms(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    }
}
