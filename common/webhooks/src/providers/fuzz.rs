//! A fuzz target per signature-header parser, as properties: arbitrary text never panics a
//! parser, never verifies, and every well-formed value parses back to what was written.
//! (`cargo fuzz` needs a nightly toolchain this project does not assume; proptest runs these
//! in every `make test`, 2,000 cases each.)

use proptest::prelude::*;

use super::scheme::{base64_tag, check_timestamp, hex_tag, VerifyOptions};
use super::standard::parse_signatures;
use super::stripe::parse_t_v1;
use super::SignatureError;

const OPTS: VerifyOptions = VerifyOptions {
    now: 1_700_000_000,
    tolerance_secs: 300,
};

/// Text biased towards what the parsers look for: separators, prefixes, digits, base64.
fn header_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ ,=tv01a-f]{0,80}",
        "(t=[0-9]{0,14},)?(v[0-9]=[0-9a-fA-F]{0,66},?){0,12}",
        "(v1,[A-Za-z0-9+/=]{0,46} ?){0,12}",
        "(sha256=|v0=)?[0-9a-fA-F]{0,70}",
        "[A-Za-z0-9+/=]{0,50}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_t_v1_parser_of_stripe_and_whop_survives_anything(text in header_text()) {
        match parse_t_v1(&text) {
            Ok((timestamp, tags)) => {
                prop_assert!(!tags.is_empty() && tags.len() <= 8);
                prop_assert!(text.contains(timestamp));
            }
            Err(error) => prop_assert!(matches!(
                error,
                SignatureError::Malformed | SignatureError::TimestampInvalid
            )),
        }
    }

    #[test]
    fn the_t_v1_parser_reads_back_what_was_written(
        t in 0u64..10_000_000_000,
        tags in proptest::collection::vec(any::<[u8; 32]>(), 1..8),
        v0 in proptest::option::of(any::<[u8; 32]>()),
    ) {
        let mut value = format!("t={t}");
        if let Some(v0) = v0 {
            value.push_str(&format!(",v0={}", hex::encode(v0)));
        }
        for tag in &tags {
            value.push_str(&format!(",v1={}", hex::encode(tag)));
        }
        let (timestamp, parsed) = parse_t_v1(&value).unwrap();
        prop_assert_eq!(timestamp, t.to_string());
        prop_assert_eq!(parsed.to_vec(), tags);
    }

    #[test]
    fn the_standard_webhooks_signature_list_survives_anything(text in header_text()) {
        if let Ok(tags) = parse_signatures(&text) {
            prop_assert!(!tags.is_empty() && tags.len() <= 8);
        }
    }

    #[test]
    fn the_standard_webhooks_signature_list_reads_back_what_was_written(
        tags in proptest::collection::vec(any::<[u8; 32]>(), 1..8),
    ) {
        use base64::Engine;
        let value = tags
            .iter()
            .map(|t| format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(t)))
            .collect::<Vec<_>>()
            .join(" ");
        prop_assert_eq!(parse_signatures(&value).unwrap().to_vec(), tags);
    }

    #[test]
    fn hex_and_base64_tags_accept_exactly_32_bytes(text in header_text(), tag in any::<[u8; 32]>()) {
        use base64::Engine;
        if let Ok(parsed) = hex_tag(&text) {
            prop_assert_eq!(hex::encode(parsed), text.to_ascii_lowercase());
        }
        if let Ok(parsed) = base64_tag(&text) {
            prop_assert_eq!(base64::engine::general_purpose::STANDARD.decode(&text).unwrap(), parsed.to_vec());
        }
        prop_assert_eq!(hex_tag(&hex::encode(tag)), Ok(tag));
        prop_assert_eq!(base64_tag(&base64::engine::general_purpose::STANDARD.encode(tag)), Ok(tag));
    }

    #[test]
    fn timestamps_are_digits_within_the_window_or_refused(text in header_text()) {
        match check_timestamp(&text, OPTS) {
            Ok(t) => {
                prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!((t - OPTS.now).abs() <= OPTS.tolerance_secs);
            }
            Err(error) => prop_assert!(matches!(
                error,
                SignatureError::TimestampInvalid
                    | SignatureError::TimestampExpired
                    | SignatureError::TimestampInFuture
            )),
        }
    }
}
