//! Identifiers that travel in DynamoDB keys, SQS attributes, URLs and log lines: plain ASCII,
//! bounded, checked once where they enter (one rule, [`is_identifier`], for all of them).

use std::fmt;

/// Whether `value` is 1..=`max_len` bytes of ASCII letters, digits and the bytes in `extra`.
pub fn is_identifier(value: &str, max_len: usize, extra: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= max_len
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// A tenant's id as stored in every tenant table's `company_id` column.
///
/// Non-empty, at most 128 characters of `[A-Za-z0-9_.:-]`: it travels in SQS message
/// attributes and DynamoDB keys, so it stays plain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompanyId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("company id must be 1-128 characters of letters, digits, '_', '-', '.', ':'")]
pub struct InvalidCompanyId;

impl CompanyId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(value: &str) -> Result<Self, InvalidCompanyId> {
        if is_identifier(value, Self::MAX_LEN, b"_-.:") {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidCompanyId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CompanyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A webhook source's id: the `{source_id}` of `/webhooks/{provider}/{source_id}`.
/// 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("source id must be 1-64 characters of letters, digits, '_', '-'")]
pub struct InvalidSourceId;

impl SourceId {
    pub const MAX_LEN: usize = 64;

    /// Whether `value` could be a source id: anything else is unknown without a lookup.
    pub fn is_valid(value: &str) -> bool {
        is_identifier(value, Self::MAX_LEN, b"_-")
    }

    pub fn parse(value: &str) -> Result<Self, InvalidSourceId> {
        if Self::is_valid(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(InvalidSourceId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for SourceId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for SourceId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for SourceId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_ids_accept_provider_style_ids() {
        for ok in [
            "co_1",
            "biz_AbC123",
            "acct_1Nv0FGQ9RKHgCVdK",
            "org:42",
            "a.b-c",
        ] {
            assert!(CompanyId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn company_ids_reject_empty_long_or_odd_characters() {
        let long = "x".repeat(129);
        for bad in ["", " ", "a b", "a'b", "a;b", "é", "a\nb", long.as_str()] {
            assert_eq!(CompanyId::parse(bad), Err(InvalidCompanyId), "{bad:?}");
        }
    }

    #[test]
    fn source_ids_are_short_plain_names() {
        for ok in ["demo_stripe", "src_0a1b2c", "A-1"] {
            assert!(SourceId::parse(ok).is_ok(), "{ok}");
        }
        let long = "s".repeat(65);
        for bad in ["", "a.b", "a:b", "a/b", "é", long.as_str()] {
            assert_eq!(SourceId::parse(bad), Err(InvalidSourceId), "{bad:?}");
        }
    }
}
