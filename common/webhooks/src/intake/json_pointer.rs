//! The string a JSON pointer (RFC 6901) names in a JSON document, found in one pass over the
//! bytes without building the document's tree.
//!
//! A source's tenant rule (`/company_id` for Whop, `/account` for Stripe Connect) is resolved on
//! every request. Parsing the body into a `serde_json::Value` for one string allocated a node
//! per value of the payload; this walks the body with serde, follows only the pointer's path and
//! skips everything else (`IgnoredAny`). The answer is what `Value::pointer(..)?.as_str()`
//! gives, including for duplicate keys (the last one wins) and array indexes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The string at `pointer` in `json`; None when the document is not valid JSON, the pointer is
/// malformed, nothing is there or it is not a string. Borrowed from `json` unless the string
/// had escapes.
pub fn string_at<'de>(json: &'de [u8], pointer: &str) -> Option<Cow<'de, str>> {
    let tokens = tokens(pointer)?;
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let found = Walk(&tokens).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    found
}

/// Whether `pointer` is a JSON pointer that names something inside a document: starts with `/`,
/// and every `~` is `~0` or `~1`.
pub fn is_valid(pointer: &str) -> bool {
    pointer.starts_with('/') && tokens(pointer).is_some()
}

/// The reference tokens of `pointer`, unescaped (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> Option<Vec<Cow<'_, str>>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    pointer
        .strip_prefix('/')?
        .split('/')
        .map(|token| {
            if token.contains('~') {
                // Only ~0 and ~1 are escapes; any other ~ makes the pointer malformed.
                let mut out = String::with_capacity(token.len());
                let mut chars = token.chars();
                while let Some(c) = chars.next() {
                    if c != '~' {
                        out.push(c);
                        continue;
                    }
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return None,
                    }
                }
                Some(Cow::Owned(out))
            } else {
                Some(Cow::Borrowed(token))
            }
        })
        .collect()
}

/// An array index token: digits, no leading zero (`0` itself excepted), as RFC 6901 has it.
fn index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if !digits || token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The remaining tokens to follow from the value being read.
struct Walk<'t, 'p>(&'t [Cow<'p, str>]);

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = Option<Cow<'de, str>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then(|| Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.0.is_empty().then_some(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        match self.0.split_first() {
            Some((head, rest)) => {
                while let Some(hit) = map.next_key_seed(KeyIs(head))? {
                    if hit {
                        // A later duplicate replaces an earlier one, as in serde_json's maps.
                        found = map.next_value_seed(Walk(rest))?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            None => while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {},
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let wanted = self
            .0
            .split_first()
            .and_then(|(head, rest)| Some((index(head)?, rest)));
        let mut position = 0usize;
        loop {
            let more = match wanted {
                Some((at, rest)) if at == position => seq
                    .next_element_seed(Walk(rest))?
                    .map(|value| found = value)
                    .is_some(),
                _ => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(found);
            }
            position += 1;
        }
    }
}

/// Reads an object key and says whether it is the wanted token.
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn at(json: &str, pointer: &str) -> Option<String> {
        string_at(json.as_bytes(), pointer).map(Cow::into_owned)
    }

    #[test]
    fn follows_object_keys_and_array_indexes_to_a_string() {
        let doc =
            r#"{"account":"acct_1","data":{"company_id":"biz_9","n":5,"list":["a",{"x":"y"}]}}"#;
        assert_eq!(at(doc, "/account").as_deref(), Some("acct_1"));
        assert_eq!(at(doc, "/data/company_id").as_deref(), Some("biz_9"));
        assert_eq!(at(doc, "/data/list/0").as_deref(), Some("a"));
        assert_eq!(at(doc, "/data/list/1/x").as_deref(), Some("y"));
        assert_eq!(at(doc, "/data/n"), None, "a number is not a string");
        assert_eq!(at(doc, "/data"), None, "an object is not a string");
        assert_eq!(at(doc, "/data/list/2"), None);
        assert_eq!(at(doc, "/data/list/01"), None, "no leading zeros");
        assert_eq!(at(doc, "/missing"), None);
        assert_eq!(at(doc, "account"), None, "a pointer starts with /");
    }

    #[test]
    fn escaped_tokens_and_keys_match_and_the_last_duplicate_wins() {
        let doc = r#"{"a/b":"slash","m~n":"tilde","k\u0065y":"escaped","d":"first","d":"last"}"#;
        assert_eq!(at(doc, "/a~1b").as_deref(), Some("slash"));
        assert_eq!(at(doc, "/m~0n").as_deref(), Some("tilde"));
        assert_eq!(at(doc, "/key").as_deref(), Some("escaped"));
        assert_eq!(at(doc, "/d").as_deref(), Some("last"));
        assert_eq!(at(doc, "/m~2n"), None, "~2 is not an escape");
        assert!(is_valid("/a~1b/m~0n/0"));
        assert!(!is_valid("/m~2n") && !is_valid("/trailing~") && !is_valid("account"));
        assert!(!is_valid(""), "the whole document is never a company id");
    }

    #[test]
    fn invalid_or_trailing_json_names_nothing() {
        assert_eq!(at(r#"{"account":"acct_1""#, "/account"), None);
        assert_eq!(at(r#"{"account":"acct_1"} x"#, "/account"), None);
        assert_eq!(at("token=x&account=acct_1", "/account"), None);
        assert_eq!(at(r#""whole""#, "").as_deref(), Some("whole"));
    }

    #[test]
    fn deep_nesting_never_exhausts_the_stack() {
        let nested = |depth: usize| format!("{}\"x\"{}", "[".repeat(depth), "]".repeat(depth));
        // Along the pointer: serde_json's recursion limit (128) ends the walk.
        assert_eq!(at(&nested(100), &"/0".repeat(100)).as_deref(), Some("x"));
        assert_eq!(at(&nested(100_000), &"/0".repeat(100_000)), None);
        // Off the pointer: skipped without recursion, however deep.
        let beside = format!(r#"{{"a":"x","b":{}}}"#, nested(100_000));
        assert_eq!(at(&beside, "/a").as_deref(), Some("x"));
    }

    fn json() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec!["a", "b", "a/b", "m~n", "0", "1", ""]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z~/\"\\\\é]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key.clone().prop_map(str::to_owned), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json_value_pointer(
            doc in json(),
            path in prop::collection::vec(
                prop::sample::select(vec!["a", "b", "a~1b", "m~0n", "0", "1", "", "01", "~"]),
                0..4,
            ),
        ) {
            let pointer: String = path.iter().map(|t| format!("/{t}")).collect();
            let text = serde_json::to_string(&doc).unwrap();
            prop_assert_eq!(
                at(&text, &pointer),
                doc.pointer(&pointer).and_then(Value::as_str).map(str::to_owned)
            );
        }
    }
}
