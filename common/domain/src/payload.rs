//! What is derived from a raw payload in the clear: the parsed JSON the projections read and
//! the minimal fields kept in `payload_min`. The raw bytes themselves are only ever stored
//! sealed, byte for byte.
//!
//! Postgres `text` and `jsonb` cannot hold U+0000, and JSON may carry it (`\u0000`, in any
//! user-typed field a provider forwards); intake's readers also skip over lone surrogates
//! (`\ud800`) in fields they do not read. Derived values replace both with U+FFFD, the same way
//! every time, so a derived id still dedupes and upserts consistently; the sealed payload keeps
//! the exact bytes.

use serde_json::{Map, Value};

/// U+FFFD, what derived text carries instead of a character Postgres cannot store.
const REPLACEMENT: &str = "\u{FFFD}";

/// The body parsed for projections, with nothing Postgres cannot store: `Null` when it is not
/// JSON at all (a Slack form).
pub fn storable(body: &[u8]) -> Value {
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let mut payload = match serde_json::from_slice::<Value>(body) {
        Ok(payload) => payload,
        // The one way a body intake accepted as JSON can fail here: a lone surrogate escape.
        Err(_) if contains(b"\\u") => {
            serde_json::from_slice(&without_lone_surrogates(body)).unwrap_or(Value::Null)
        }
        Err(_) => return Value::Null,
    };
    if contains(b"\\u0000") {
        replace_nul(&mut payload);
    }
    payload
}

fn replace_nul(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', REPLACEMENT),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                *map = entries
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', REPLACEMENT), v))
                    .collect::<Map<_, _>>();
            }
            map.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

fn hex4(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..4)?).ok()?;
    u16::from_str_radix(text, 16).ok()
}

/// The body with every `\uXXXX` escape of a surrogate that has no partner replaced by
/// `\uFFFD`. Every backslash in JSON text begins an escape inside a string, so no tokenizer is
/// needed: escapes are copied as they are, except unpaired surrogates.
fn without_lone_surrogates(body: &[u8]) -> Vec<u8> {
    let is_high = |u: u16| (0xD800..0xDC00).contains(&u);
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        if byte != b'\\' || i + 1 >= body.len() {
            out.push(byte);
            i += 1;
            continue;
        }
        if body[i + 1] != b'u' {
            out.extend_from_slice(&body[i..i + 2]);
            i += 2;
            continue;
        }
        let Some(unit) = hex4(&body[i + 2..]) else {
            out.extend_from_slice(&body[i..i + 2]);
            i += 2;
            continue;
        };
        let paired = is_high(unit)
            && body.get(i + 6..i + 8) == Some(b"\\u")
            && hex4(&body[i + 8..]).is_some_and(is_low);
        if paired {
            out.extend_from_slice(&body[i..i + 12]);
            i += 12;
        } else if is_high(unit) || is_low(unit) {
            out.extend_from_slice(b"\\uFFFD");
            i += 6;
        } else {
            out.extend_from_slice(&body[i..i + 6]);
            i += 6;
        }
    }
    out
}

/// Fields kept in the clear in `payload_min`: identifiers, kinds, states and amounts. Names,
/// emails and free text stay only in the encrypted payload.
const MINIMAL_FIELDS: [&str; 14] = [
    "id",
    "object",
    "type",
    "status",
    "customer",
    "subscription",
    "membership",
    "invoice",
    "amount",
    "amount_due",
    "amount_paid",
    "currency",
    "created",
    "plan",
];

pub fn minimal(payload: &Value) -> Value {
    let pick = |object: &serde_json::Map<String, Value>| -> Value {
        MINIMAL_FIELDS
            .iter()
            .filter_map(|k| {
                object
                    .get(*k)
                    .filter(|v| !v.is_object() && !v.is_array())
                    .map(|v| ((*k).to_owned(), v.clone()))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let Some(top) = payload.as_object() else {
        return Value::Null;
    };
    let mut min = pick(top);
    let inner = payload
        .pointer("/data/object")
        // Clerk's `data` names its kind in `data.object` ("user"): then `data` is the object.
        .filter(|inner| inner.is_object())
        .or_else(|| payload.get("data"))
        .and_then(Value::as_object);
    if let (Some(map), Some(inner)) = (min.as_object_mut(), inner) {
        map.insert("data".into(), pick(inner));
    }
    min
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_min_keeps_identifiers_and_amounts_but_no_personal_data() {
        let stripe = serde_json::json!({
            "id": "evt_1", "type": "invoice.payment_failed", "created": 1,
            "data": {"object": {"id": "in_1", "object": "invoice", "amount_due": 4900, "currency": "usd",
                "customer": "cus_1", "customer_email": "ada@example.com", "customer_name": "Ada",
                "lines": {"data": [{"description": "secret stuff"}]}}}
        });
        let min = minimal(&stripe);
        assert_eq!(min["data"]["amount_due"], 4900);
        assert_eq!(min["data"]["customer"], "cus_1");
        let text = min.to_string();
        for private in ["ada@example.com", "Ada", "secret stuff"] {
            assert!(
                !text.contains(private),
                "{private} leaked into payload_min: {text}"
            );
        }
        assert_eq!(minimal(&Value::Null), Value::Null);
    }

    #[test]
    fn nul_in_values_and_keys_becomes_the_replacement_character_everywhere() {
        let body =
            br#"{"id":"cus_\u0000x","name":"Ada\u0000","meta":{"a\u0000b":["\u0000"]},"n":1}"#;
        let payload = storable(body);
        assert_eq!(payload["id"], "cus_\u{FFFD}x");
        assert_eq!(payload["name"], "Ada\u{FFFD}");
        assert_eq!(payload["meta"]["a\u{FFFD}b"][0], "\u{FFFD}");
        assert_eq!(payload["n"], 1);
        assert!(!payload.to_string().contains("\\u0000"));
        // The same input always gives the same derived text.
        assert_eq!(storable(body), payload);
    }

    #[test]
    fn a_literal_backslash_u_is_text_not_an_escape() {
        let payload = storable(br#"{"note":"C:\\u0000dir"}"#);
        assert_eq!(payload["note"], "C:\\u0000dir");
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character_and_pairs_survive() {
        let body = br#"{"a":"x\ud800y","b":"\udc00","c":"\ud83d\ude00","d":"\\ud800"}"#;
        assert!(
            serde_json::from_slice::<Value>(body).is_err(),
            "strict JSON refuses it"
        );
        let payload = storable(body);
        assert_eq!(payload["a"], "x\u{FFFD}y");
        assert_eq!(payload["b"], "\u{FFFD}");
        assert_eq!(payload["c"], "\u{1F600}");
        assert_eq!(payload["d"], "\\ud800");
    }

    #[test]
    fn clerk_events_keep_their_data_ids_in_payload_min() {
        let clerk = serde_json::json!({"type": "user.created", "object": "event",
            "data": {"id": "user_1", "object": "user", "first_name": "Ada",
                     "email_addresses": [{"email_address": "ada@example.com"}]}});
        let min = minimal(&clerk);
        assert_eq!(min["data"]["id"], "user_1");
        assert_eq!(min["data"]["object"], "user");
        assert!(!min.to_string().contains("Ada"), "{min}");
    }

    #[test]
    fn what_is_not_json_is_null() {
        assert_eq!(storable(b"token=x&text=%00"), Value::Null);
        assert_eq!(storable(b"{\"a\":"), Value::Null);
        assert_eq!(storable(b""), Value::Null);
    }
}
