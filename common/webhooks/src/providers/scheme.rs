//! What every signature scheme shares: header access, timestamp windows, HMAC-SHA256.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::SigningSecret;

/// Signature header values longer than this are refused before any parsing.
const MAX_HEADER_LEN: usize = 4096;
/// At most this many candidate signatures per request are checked (rotation needs 2-3); more
/// is a way to make us compute MACs for free.
pub(crate) const MAX_SIGNATURES: usize = 8;

/// An HMAC-SHA256 tag.
pub(crate) type Tag = [u8; 32];

/// The candidate tags of one request: inline for the usual one or two, so parsing a header
/// does not allocate.
pub(crate) type Tags = smallvec::SmallVec<[Tag; 2]>;

/// 64 hex digits -> a tag, without allocating.
pub(crate) fn hex_tag(text: &str) -> Result<Tag, SignatureError> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(text, &mut tag).map_err(|_| SignatureError::Malformed)?;
    Ok(tag)
}

/// Standard base64 of 32 bytes -> a tag, without allocating.
pub(crate) fn base64_tag(text: &str) -> Result<Tag, SignatureError> {
    use base64::Engine;
    let mut buffer = [0u8; 48];
    match base64::engine::general_purpose::STANDARD.decode_slice(text, &mut buffer) {
        Ok(32) => Ok(buffer[..32].try_into().unwrap_or([0; 32])),
        _ => Err(SignatureError::Malformed),
    }
}

/// The clock and the replay window for one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Now, in Unix seconds.
    pub now: i64,
    /// How far a signed timestamp may be from `now`, either way, in seconds.
    pub tolerance_secs: i64,
}

/// Why a signature was refused: always a 401; `code()` is the stable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is missing or not a number")]
    TimestampInvalid,
    #[error("the signature timestamp is too old")]
    TimestampExpired,
    #[error("the signature timestamp is in the future")]
    TimestampInFuture,
    #[error("no signature matches")]
    Mismatch,
    #[error("the source has no active signing secret")]
    NoActiveSecret,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::TimestampInvalid => "timestamp_invalid",
            SignatureError::TimestampExpired => "timestamp_expired",
            SignatureError::TimestampInFuture => "timestamp_in_future",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::NoActiveSecret => "no_active_secret",
        }
    }
}

/// A header as text: absent is `None`; present but not short visible ASCII is malformed.
pub(crate) fn header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, SignatureError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) if value.len() > MAX_HEADER_LEN => Err(SignatureError::Malformed),
        Some(value) => value
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| SignatureError::Malformed),
    }
}

pub(crate) fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<&'a str, SignatureError> {
    header(headers, name)?.ok_or(SignatureError::Missing)
}

/// Parses a Unix-seconds timestamp and checks it is within the tolerance of now.
pub(crate) fn check_timestamp(value: &str, options: VerifyOptions) -> Result<i64, SignatureError> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::TimestampInvalid);
    }
    let ts: i64 = value
        .parse()
        .map_err(|_| SignatureError::TimestampInvalid)?;
    let tolerance = options.tolerance_secs.max(0);
    if options.now.saturating_sub(ts) > tolerance {
        return Err(SignatureError::TimestampExpired);
    }
    if ts.saturating_sub(options.now) > tolerance {
        return Err(SignatureError::TimestampInFuture);
    }
    Ok(ts)
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the error arm is unreachable for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(part);
    }
    mac
}

/// HMAC-SHA256 over the concatenated parts.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts).finalize().into_bytes().into()
}

/// Ok when any (key, candidate tag) pair matches, else `Mismatch`. One MAC per key, compared
/// in constant time with every candidate: no early exit that would tell an attacker which
/// secret or which position matched.
pub(crate) fn matches_any<K: AsRef<[u8]>>(
    keys: impl IntoIterator<Item = K>,
    parts: &[&[u8]],
    tags: &[Tag],
) -> Result<(), SignatureError> {
    let mut matched = false;
    for key in keys {
        let expected = mac(key.as_ref(), parts).finalize();
        for tag in tags {
            // `CtOutput` compares in constant time.
            matched |= expected == hmac::digest::CtOutput::new((*tag).into());
        }
    }
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The secrets' own bytes as HMAC keys (every scheme but Standard Webhooks' base64 keys).
pub(crate) fn raw_keys<'s, 'a>(
    secrets: &'s [&'a SigningSecret],
) -> impl Iterator<Item = &'a [u8]> + 's
where
    'a: 's,
{
    secrets.iter().map(|s| s.expose().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: VerifyOptions = VerifyOptions {
        now: 1_000_000,
        tolerance_secs: 300,
    };

    #[test]
    fn timestamps_inside_the_window_pass_either_side() {
        assert_eq!(check_timestamp("1000000", OPTS), Ok(1_000_000));
        assert_eq!(check_timestamp("999700", OPTS), Ok(999_700));
        assert_eq!(check_timestamp("1000300", OPTS), Ok(1_000_300));
    }

    #[test]
    fn timestamps_outside_the_window_are_expired_or_future() {
        assert_eq!(
            check_timestamp("999699", OPTS),
            Err(SignatureError::TimestampExpired)
        );
        assert_eq!(
            check_timestamp("1000301", OPTS),
            Err(SignatureError::TimestampInFuture)
        );
    }

    #[test]
    fn non_numeric_or_huge_timestamps_are_invalid() {
        for bad in ["", "-5", "12a", " 1", "99999999999999999999", "1e9"] {
            assert_eq!(
                check_timestamp(bad, OPTS),
                Err(SignatureError::TimestampInvalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let other = [0u8; 32];
        let message: &[&[u8]] = &[b"what do ya want for nothing?"];
        assert_eq!(matches_any([b"Jefe"], message, &[tag]), Ok(()));
        // Any candidate may match, in any position, under any key.
        assert_eq!(
            matches_any([&b"wrong"[..], b"Jefe"], message, &[other, tag]),
            Ok(())
        );
        assert_eq!(
            matches_any([b"Jefe"], &[b"what do ya want for nothing!"], &[tag]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            matches_any([b"Jefe"], message, &[other]),
            Err(SignatureError::Mismatch)
        );
    }
}
