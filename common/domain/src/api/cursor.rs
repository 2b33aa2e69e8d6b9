//! Pagination cursors: the position after the last row of a page (its time and id), sealed
//! with the key ring under a context naming the company and the list. Another tenant's cursor,
//! another list's, or one changed by a single bit does not open: the answer is 400
//! `invalid_cursor`, and nothing about the other tenant is revealed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use inlet_core::crypto::{context, KeyRing};
use inlet_core::CompanyId;

/// Longest cursor text accepted (a sealed cursor is about 100 characters).
const MAX_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last row's time, microseconds since the epoch.
    pub at_micros: i64,
    pub id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API gave for this list")]
pub struct CursorError;

impl Cursor {
    pub fn seal(&self, keys: &KeyRing, company: &CompanyId, list: &str) -> String {
        let plain = format!("{}.{}", self.at_micros, self.id);
        let sealed = keys.seal(
            plain.as_bytes(),
            &context::api_cursor(company.as_str(), list),
        );
        URL_SAFE_NO_PAD.encode(sealed)
    }

    pub fn open(
        text: &str,
        keys: &KeyRing,
        company: &CompanyId,
        list: &str,
    ) -> Result<Cursor, CursorError> {
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(CursorError);
        }
        let sealed = URL_SAFE_NO_PAD.decode(text).map_err(|_| CursorError)?;
        let sealed = String::from_utf8(sealed).map_err(|_| CursorError)?;
        let plain = keys
            .open(&sealed, &context::api_cursor(company.as_str(), list))
            .map_err(|_| CursorError)?;
        let plain = String::from_utf8(plain).map_err(|_| CursorError)?;
        let (at, id) = plain.split_once('.').ok_or(CursorError)?;
        Ok(Cursor {
            at_micros: at.parse().map_err(|_| CursorError)?,
            id: id.parse().map_err(|_| CursorError)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyRing {
        KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", None).unwrap()
    }

    #[test]
    fn a_cursor_opens_for_its_company_and_list_only() {
        let (a, b) = (
            CompanyId::parse("co_a").unwrap(),
            CompanyId::parse("co_b").unwrap(),
        );
        let cursor = Cursor {
            at_micros: 1_796_154_874_602_421,
            id: 42,
        };
        let text = cursor.seal(&keys(), &a, "events");
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::open(&text, &keys(), &a, "events"), Ok(cursor));
        assert_eq!(Cursor::open(&text, &keys(), &b, "events"), Err(CursorError));
        assert_eq!(Cursor::open(&text, &keys(), &a, "cases"), Err(CursorError));
        let mut tampered = text.clone().into_bytes();
        tampered[text.len() / 2] = if tampered[text.len() / 2] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            Cursor::open(&tampered, &keys(), &a, "events"),
            Err(CursorError)
        );
        for bad in [
            "",
            "'; DROP TABLE webhook_events; --",
            "%00",
            &"A".repeat(600),
        ] {
            assert_eq!(
                Cursor::open(bad, &keys(), &a, "events"),
                Err(CursorError),
                "{bad:?}"
            );
        }
    }
}
