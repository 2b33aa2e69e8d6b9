//! Envelope v1: the SQS message body between intake and the consumers. Documented in
//! docs/ENVELOPE.md; consumers reject any other version as a permanent error.
//!
//! The raw body travels byte for byte: a JSON body is embedded as JSON, verbatim (no escaping:
//! it was already parsed whole while reading its identity, and is readable in the DLQ); other
//! UTF-8 bodies as a JSON string; anything else as base64.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const ENVELOPE_VERSION: u32 = 1;

/// Text fields borrow from the request while intake builds an envelope (no copies on the hot
/// path); a consumer reading one from SQS owns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeMeta<'a> {
    pub version: u32,
    pub source_id: Cow<'a, str>,
    pub provider: Cow<'a, str>,
    pub company_id: Cow<'a, str>,
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<Cow<'a, str>>,
    /// RFC 3339, UTC, when the provider says the event happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    /// RFC 3339, UTC, when intake accepted it.
    pub received_at: String,
    pub headers: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
    pub body_encoding: BodyEncoding,
    /// Re-sent from the ledger by an operator or a tenant (`inlet replay`): the consumer
    /// re-applies it to an existing ledger row instead of skipping it as a duplicate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay: bool,
}

impl EnvelopeMeta<'_> {
    pub fn into_owned(self) -> EnvelopeMeta<'static> {
        let owned = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        EnvelopeMeta {
            version: self.version,
            source_id: owned(self.source_id),
            provider: owned(self.provider),
            company_id: owned(self.company_id),
            event_id: owned(self.event_id),
            event_type: owned(self.event_type),
            object_type: self.object_type.map(owned),
            object_id: self.object_id.map(owned),
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            headers: self
                .headers
                .into_iter()
                .map(|(name, value)| (owned(name), owned(value)))
                .collect(),
            trace_id: self.trace_id.map(owned),
            body_encoding: self.body_encoding,
            replay: self.replay,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub meta: EnvelopeMeta<'a>,
    /// The raw request body, byte for byte.
    pub body: Cow<'a, [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// `body` is the request body itself, a JSON value, verbatim.
    Json,
    /// `body` is a JSON string holding the UTF-8 request body.
    Utf8,
    /// `body` is a JSON string holding the base64 of the request body.
    Base64,
}

/// Why a message is not a usable envelope: always a permanent error.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error(
        "envelope version {0} is not supported (this consumer reads version {ENVELOPE_VERSION})"
    )]
    UnknownVersion(u32),
    #[error("the message is not an envelope: {0}")]
    Malformed(String),
}

impl BodyEncoding {
    /// How to carry `raw`: verbatim when it is a whole JSON document with no surrounding
    /// whitespace (which a JSON reader would not hand back). `parsed_as_json` means a UTF-8 JSON
    /// reader took the whole body (`EventIdentity::body_is_json`), so its UTF-8 is not checked
    /// a second time.
    pub fn for_body(raw: &[u8], parsed_as_json: bool) -> BodyEncoding {
        let utf8 = parsed_as_json || std::str::from_utf8(raw).is_ok();
        let trimmed = matches!((raw.first(), raw.last()), (Some(a), Some(z)) if !a.is_ascii_whitespace() && !z.is_ascii_whitespace());
        match (utf8, parsed_as_json && trimmed) {
            (true, true) => BodyEncoding::Json,
            (true, false) => BodyEncoding::Utf8,
            (false, _) => BodyEncoding::Base64,
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u32>,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(flatten)]
    meta: EnvelopeMeta<'static>,
    #[serde(borrow)]
    body: &'a RawValue,
}

impl Envelope<'_> {
    /// The SQS message body.
    pub fn to_json(&self) -> Vec<u8> {
        // The metadata object, then the body spliced in before its closing brace.
        let encoded_len = match self.meta.body_encoding {
            BodyEncoding::Json => self.body.len(),
            BodyEncoding::Utf8 => self.body.len() + self.body.len() / 8,
            BodyEncoding::Base64 => self.body.len() / 3 * 4 + 4,
        };
        let mut out = Vec::with_capacity(encoded_len + 512);
        if serde_json::to_writer(&mut out, &self.meta).is_err() {
            return Vec::new();
        }
        out.pop();
        out.extend_from_slice(b",\"body\":");
        match self.meta.body_encoding {
            BodyEncoding::Json => out.extend_from_slice(&self.body),
            BodyEncoding::Utf8 => {
                let text = std::str::from_utf8(&self.body).unwrap_or_default();
                out.extend_from_slice(serde_json::to_string(text).unwrap_or_default().as_bytes());
            }
            BodyEncoding::Base64 => {
                out.push(b'"');
                out.extend_from_slice(B64.encode(&self.body).as_bytes());
                out.push(b'"');
            }
        }
        out.push(b'}');
        out
    }

    pub fn into_owned(self) -> Envelope<'static> {
        Envelope {
            meta: self.meta.into_owned(),
            body: Cow::Owned(self.body.into_owned()),
        }
    }
}

impl Envelope<'static> {
    /// Reads a message body: unknown versions and malformed envelopes are errors (permanent).
    pub fn from_json(message: &[u8]) -> Result<Envelope<'static>, EnvelopeError> {
        let malformed = |e: serde_json::Error| EnvelopeError::Malformed(e.to_string());
        let version: VersionOnly = serde_json::from_slice(message).map_err(malformed)?;
        match version.version {
            Some(ENVELOPE_VERSION) => {}
            Some(other) => return Err(EnvelopeError::UnknownVersion(other)),
            None => return Err(EnvelopeError::Malformed("no version".into())),
        }
        let wire: Wire = serde_json::from_slice(message).map_err(malformed)?;
        let raw = wire.body.get();
        let body = match wire.meta.body_encoding {
            BodyEncoding::Json => raw.as_bytes().to_vec(),
            BodyEncoding::Utf8 => serde_json::from_str::<String>(raw)
                .map_err(malformed)?
                .into_bytes(),
            BodyEncoding::Base64 => {
                let text = serde_json::from_str::<String>(raw).map_err(malformed)?;
                B64.decode(text)
                    .map_err(|e| EnvelopeError::Malformed(format!("body is not base64: {e}")))?
            }
        };
        Ok(Envelope {
            meta: wire.meta,
            body: Cow::Owned(body),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(raw: &[u8], parsed_as_json: bool) -> Envelope<'_> {
        Envelope {
            meta: EnvelopeMeta {
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
                headers: BTreeMap::new(),
                trace_id: None,
                body_encoding: BodyEncoding::for_body(raw, parsed_as_json),
                replay: false,
            },
            body: Cow::Borrowed(raw),
        }
    }

    #[test]
    fn every_body_survives_the_round_trip_byte_for_byte() {
        let cases: [(&[u8], bool, BodyEncoding); 6] = [
            (br#"{"a":1,"s":"q\"uote \u00e9"}"#, true, BodyEncoding::Json),
            (b"[1, 2 ,3]", true, BodyEncoding::Json),
            (b" {\"a\":1}\n", true, BodyEncoding::Utf8),
            (b"token=x&text=%F0%9F%98%80", false, BodyEncoding::Utf8),
            (b"\xff\x00\xfe binary", false, BodyEncoding::Base64),
            (b"", false, BodyEncoding::Utf8),
        ];
        for (raw, json, encoding) in cases {
            let envelope = envelope(raw, json);
            assert_eq!(envelope.meta.body_encoding, encoding, "{raw:?}");
            let wire = envelope.to_json();
            let text = std::str::from_utf8(&wire).expect("an envelope is UTF-8");
            serde_json::from_str::<serde_json::Value>(text)
                .expect("an envelope is one JSON document");
            let back = Envelope::from_json(&wire).unwrap();
            assert_eq!(back.body.as_ref(), raw);
            assert_eq!(back.meta, envelope.meta);
        }
    }

    #[test]
    fn json_bodies_are_embedded_as_json_not_as_escaped_strings() {
        let wire = envelope(br#"{"id":"evt_1"}"#, true).to_json();
        let value: serde_json::Value = serde_json::from_slice(&wire).unwrap();
        assert_eq!(value["body"]["id"], "evt_1");
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        assert_eq!(
            Envelope::from_json(br#"{"version":2,"x":1}"#).unwrap_err(),
            EnvelopeError::UnknownVersion(2)
        );
        assert!(matches!(
            Envelope::from_json(br#"{"body":1}"#),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::from_json(b"not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut truncated = envelope(b"{}", true).to_json();
        truncated.truncate(truncated.len() - 5);
        assert!(matches!(
            Envelope::from_json(&truncated),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}

#[cfg(test)]
mod fuzz {
    //! The consumer's decoder as a fuzz target: nothing on the queue can panic it, and every
    //! envelope intake writes reads back byte for byte.
    use proptest::prelude::*;

    use super::*;

    fn meta(encoding: BodyEncoding, strings: &[String]) -> EnvelopeMeta<'static> {
        let text = |i: usize| Cow::Owned(strings[i % strings.len()].clone());
        EnvelopeMeta {
            version: ENVELOPE_VERSION,
            source_id: text(0),
            provider: text(1),
            company_id: text(2),
            event_id: text(3),
            event_type: text(4),
            object_type: Some(text(5)),
            object_id: None,
            occurred_at: None,
            received_at: "2026-12-01T00:00:00Z".into(),
            headers: BTreeMap::from([(text(6), text(7))]),
            trace_id: Some(text(8)),
            body_encoding: encoding,
            replay: false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::from_json(&bytes);
        }

        #[test]
        fn every_envelope_reads_back_and_no_cut_or_flip_panics(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            json_body in "\\{(\"[a-z\\\\u0000]{0,6}\":(\"[^\"\\\\]{0,12}\"|[0-9]{1,6}|null),?){0,4}\"z\":1\\}",
            strings in proptest::collection::vec(any::<String>(), 1..9),
            cut in any::<proptest::sample::Index>(),
            flip in any::<proptest::sample::Index>(),
        ) {
            let json_ok = serde_json::from_str::<serde::de::IgnoredAny>(&json_body).is_ok();
            for (raw, parsed_as_json) in [(body.clone(), false), (json_body.into_bytes(), json_ok)] {
                let envelope = Envelope {
                    meta: meta(BodyEncoding::for_body(&raw, parsed_as_json), &strings),
                    body: Cow::Borrowed(&raw),
                };
                let wire = envelope.to_json();
                let back = Envelope::from_json(&wire).unwrap();
                prop_assert_eq!(back.body.as_ref(), &raw[..]);
                prop_assert_eq!(&back.meta, &envelope.meta);
                let _ = Envelope::from_json(&wire[..cut.index(wire.len())]);
                let mut flipped = wire.clone();
                let i = flip.index(flipped.len());
                flipped[i] ^= 0x20;
                let _ = Envelope::from_json(&flipped);
            }
        }
    }
}
