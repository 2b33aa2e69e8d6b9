//! Tenant API keys: `ink_<key id>_<secret>`, 256 random bits of secret, of which only a hash is
//! ever stored.
//!
//! The hash is SHA-256 over a domain-separation tag, the key id and the secret bytes, not a
//! password hash (scrypt, argon2): those are slow on purpose to protect low-entropy secrets from
//! guessing, and a 256-bit random secret cannot be guessed at any speed. A password hash would
//! add tens of milliseconds and a memory-hard allocation to every API request (a Lambda cost and
//! a denial-of-service lever) and protect nothing more. It is not keyed with a server secret
//! either: a database dump alone still yields no usable key, and key-ring rotation never
//! invalidates keys. Comparison is constant-time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::random_bytes;

const PREFIX: &str = "ink_";
/// Hex characters of a key id (64 random bits: an id, not a secret).
pub const KEY_ID_LEN: usize = 16;
/// Bytes of secret (256 bits), written as 64 hex characters.
pub const SECRET_LEN: usize = 32;
const HASH_TAG: &[u8] = b"inlet/api-key/v1\0";

/// What a key may do. `admin` implies every tenant scope; `operator` (the platform's views
/// across tenants: every dead letter, redrive, health) is implied by nothing and is given only to
/// the keys of the people who run Inlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    EventsRead,
    EventsReplay,
    PayloadsRead,
    PrivacyExport,
    PrivacyDelete,
    ReportsRead,
    Admin,
    Operator,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::EventsRead,
        Scope::EventsReplay,
        Scope::PayloadsRead,
        Scope::PrivacyExport,
        Scope::PrivacyDelete,
        Scope::ReportsRead,
        Scope::Admin,
        Scope::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsRead => "events:read",
            Scope::EventsReplay => "events:replay",
            Scope::PayloadsRead => "payloads:read",
            Scope::PrivacyExport => "privacy:export",
            Scope::PrivacyDelete => "privacy:delete",
            Scope::ReportsRead => "reports:read",
            Scope::Admin => "admin",
            Scope::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Parses a comma-separated list; an unknown scope is named.
    pub fn parse_list(text: &str) -> Result<Vec<Scope>, String> {
        let mut scopes = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::parse(part).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope {part:?}; one of {}", known.join(", "))
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("at least one scope is needed".into());
        }
        scopes.sort();
        Ok(scopes)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `granted` allows `needed` (`admin` allows every tenant scope, not `operator`).
pub fn allows(granted: &[Scope], needed: Scope) -> bool {
    granted.contains(&needed) || (needed != Scope::Operator && granted.contains(&Scope::Admin))
}

/// A key as presented: its id (to find the stored hash) and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    key_id: String,
    secret: [u8; SECRET_LEN],
}

/// Never prints the secret.
impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedKey({PREFIX}{}_…)", self.key_id)
    }
}

/// Why a presented key is not even well formed (says nothing about any stored key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an API key is ink_ followed by a 16-hex-digit key id, an underscore and 64 hex digits")]
pub struct MalformedKey;

impl PresentedKey {
    /// Parses `ink_<16 hex>_<64 hex>` (lower-case hex).
    pub fn parse(text: &str) -> Result<Self, MalformedKey> {
        let rest = text.strip_prefix(PREFIX).ok_or(MalformedKey)?;
        let (key_id, secret_hex) = rest.split_once('_').ok_or(MalformedKey)?;
        let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if key_id.len() != KEY_ID_LEN || !lower_hex(key_id) {
            return Err(MalformedKey);
        }
        if secret_hex.len() != SECRET_LEN * 2 || !lower_hex(secret_hex) {
            return Err(MalformedKey);
        }
        let mut secret = [0u8; SECRET_LEN];
        hex::decode_to_slice(secret_hex, &mut secret).map_err(|_| MalformedKey)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            secret,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether this key's secret hashes to `stored` (constant-time).
    pub fn matches(&self, stored: &[u8]) -> bool {
        let hash = secret_hash(&self.key_id, &self.secret);
        stored.len() == hash.len() && bool::from(hash.ct_eq(stored))
    }
}

/// A freshly made key: shown once, then only its id and hash exist.
pub struct NewKey {
    pub key_id: String,
    /// The whole key, `ink_<id>_<secret>`: print it once, store it never.
    pub token: String,
    pub hash: [u8; 32],
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NewKey({})", self.key_id)
    }
}

impl NewKey {
    pub fn generate() -> Self {
        let key_id = hex::encode(random_bytes(KEY_ID_LEN / 2));
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&random_bytes(SECRET_LEN));
        let hash = secret_hash(&key_id, &secret);
        let token = format!("{PREFIX}{key_id}_{}", hex::encode(secret));
        Self {
            key_id,
            token,
            hash,
        }
    }
}

fn secret_hash(key_id: &str, secret: &[u8; SECRET_LEN]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(HASH_TAG);
    hasher.update(key_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(secret);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_and_matches_its_hash_and_no_other() {
        let key = NewKey::generate();
        let presented = PresentedKey::parse(&key.token).unwrap();
        assert_eq!(presented.key_id(), key.key_id);
        assert!(presented.matches(&key.hash));
        let other = NewKey::generate();
        assert!(!presented.matches(&other.hash));
        assert!(!presented.matches(&key.hash[..31]));
        assert_ne!(key.token, other.token);
        assert!(!format!("{presented:?}").contains(&key.token[21..]));
    }

    #[test]
    fn a_changed_secret_digit_does_not_match() {
        let key = NewKey::generate();
        let mut token = key.token.clone().into_bytes();
        let last = token.len() - 1;
        token[last] = if token[last] == b'0' { b'1' } else { b'0' };
        let forged = PresentedKey::parse(std::str::from_utf8(&token).unwrap()).unwrap();
        assert!(!forged.matches(&key.hash));
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let good = NewKey::generate().token;
        for bad in [
            String::new(),
            "ink_".into(),
            good.to_uppercase(),
            good.replacen("ink_", "inx_", 1),
            format!("{good}0"),
            good[..good.len() - 1].to_owned(),
            good.replacen('_', "-", 2),
            format!("ink_{}_{}", "g".repeat(16), "0".repeat(64)),
            format!("ink_{}_{}", "0".repeat(16), "' OR 1=1 --"),
            format!("ink_{}_{}", "0".repeat(16), "é".repeat(32)),
        ] {
            assert_eq!(PresentedKey::parse(&bad), Err(MalformedKey), "{bad:?}");
        }
    }

    #[test]
    fn scopes_parse_by_name_and_admin_allows_everything() {
        assert_eq!(
            Scope::parse_list("events:read, payloads:read,events:read").unwrap(),
            [Scope::EventsRead, Scope::PayloadsRead]
        );
        assert!(Scope::parse_list("events:write")
            .unwrap_err()
            .contains("unknown scope \"events:write\""));
        assert!(Scope::parse_list(" , ").is_err());
        assert!(allows(&[Scope::Admin], Scope::PrivacyDelete));
        assert!(!allows(&[Scope::Admin], Scope::Operator));
        assert!(allows(&[Scope::Operator], Scope::Operator));
        assert!(!allows(&[Scope::EventsRead], Scope::PayloadsRead));
    }
}
