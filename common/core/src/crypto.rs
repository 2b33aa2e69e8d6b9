//! The key ring: AES-256-GCM with a key id stored beside every sealed value, several keys at
//! once so keys can rotate (new values use the active key; old ones still open).
//!
//! Keys come from configuration (`INLET_KEYS=kid:base64,kid2:base64`, `INLET_ACTIVE_KEY=kid`),
//! never from the code. Sealed text is `kid:base64(nonce || ciphertext || tag)`.

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

const NONCE_LEN: usize = 12;

/// `n` bytes from the operating system's CSPRNG (generated secrets, tokens).
pub fn random_bytes(n: usize) -> Vec<u8> {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<String, Aes256Gcm>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("INLET_KEYS is not set: give it kid:base64-32-byte-key[,kid:key...] (make services writes one for local use)")]
    Missing,
    #[error("INLET_KEYS entry {0} is not kid:base64 of exactly 32 bytes")]
    BadKey(usize),
    #[error("the active key id {0} is not in INLET_KEYS")]
    UnknownActive(String),
    #[error("sealed value names key {0}, which the key ring does not hold")]
    UnknownKey(String),
    #[error("sealed value is malformed or was not sealed for this context")]
    Open,
}

impl KeyRing {
    /// Parses `kid:base64key[,kid:base64key...]`; `active` defaults to the first key id.
    pub fn parse(spec: &str, active: Option<&str>) -> Result<Self, KeyRingError> {
        let mut keys = BTreeMap::new();
        let mut first = None;
        for (index, entry) in spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (kid, encoded) = entry
                .split_once(':')
                .ok_or(KeyRingError::BadKey(index + 1))?;
            let bytes = B64
                .decode(encoded)
                .map_err(|_| KeyRingError::BadKey(index + 1))?;
            let valid_kid = crate::ids::is_identifier(kid, 64, b"_-");
            if bytes.len() != 32 || !valid_kid {
                return Err(KeyRingError::BadKey(index + 1));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyRingError::BadKey(index + 1))?;
            first.get_or_insert_with(|| kid.to_owned());
            keys.insert(kid.to_owned(), cipher);
        }
        let active = match (active, first) {
            (Some(a), _) if !a.is_empty() => a.to_owned(),
            (_, Some(f)) => f,
            (_, None) => return Err(KeyRingError::Missing),
        };
        if !keys.contains_key(&active) {
            return Err(KeyRingError::UnknownActive(active));
        }
        Ok(Self { keys, active })
    }

    /// From `INLET_KEYS` and `INLET_ACTIVE_KEY`.
    pub fn from_env() -> Result<Self, KeyRingError> {
        crate::config::key_ring(&crate::config::ProcessEnv)
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Encrypts with the active key. `context` (e.g. the source id) is authenticated, so a
    /// value copied to another record does not open there.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> String {
        let (key_id, bytes) = self.seal_bytes(plaintext, context);
        format!("{key_id}:{}", B64.encode(bytes))
    }

    /// Encrypts with the active key: (key id, nonce || ciphertext || tag).
    pub fn seal_bytes(&self, plaintext: &[u8], context: &[u8]) -> (String, Vec<u8>) {
        let cipher = &self.keys[&self.active];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        (self.active.clone(), out)
    }

    /// Opens `kid:base64` text.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, KeyRingError> {
        let (key_id, encoded) = sealed.split_once(':').ok_or(KeyRingError::Open)?;
        let bytes = B64.decode(encoded).map_err(|_| KeyRingError::Open)?;
        self.open_bytes(key_id, &bytes, context)
    }

    pub fn open_bytes(
        &self,
        key_id: &str,
        bytes: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyRingError> {
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| KeyRingError::UnknownKey(key_id.to_owned()))?;
        if bytes.len() < NONCE_LEN {
            return Err(KeyRingError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| KeyRingError::Open)
    }
}

/// What each sealed value is bound to (authenticated as associated data): a value copied to
/// another record, column or purpose does not open there. Every context in one place, so two
/// purposes can never share one by accident.
pub mod context {
    /// A webhook source's signing secret (DynamoDB): its source id.
    pub fn source_secret(source_id: &str) -> Vec<u8> {
        source_id.as_bytes().to_vec()
    }

    /// An event's raw payload in the ledger.
    pub fn payload(company_id: &str, source_id: &str, event_id: &str) -> Vec<u8> {
        format!("{company_id}/{source_id}/{event_id}").into_bytes()
    }

    /// A member's email address.
    pub fn member_email(company_id: &str, provider: &str, external_id: &str) -> Vec<u8> {
        format!("member_email/{company_id}/{provider}/{external_id}").into_bytes()
    }

    /// A member's display name.
    pub fn member_name(company_id: &str, provider: &str, external_id: &str) -> Vec<u8> {
        format!("member_name/{company_id}/{provider}/{external_id}").into_bytes()
    }

    /// A reminder endpoint's signing secret.
    pub fn endpoint_secret(company_id: &str, endpoint_id: i64) -> Vec<u8> {
        format!("reminder_endpoint/{company_id}/{endpoint_id}").into_bytes()
    }

    /// A reminder link's click token.
    pub const CLICK_TOKEN: &[u8] = b"inlet/click-token/v1";

    /// The member id a pending export job needs, sealed in its privacy request.
    pub fn privacy_subject(company_id: &str, subject_hash: &str) -> Vec<u8> {
        format!("privacy_subject/{company_id}/{subject_hash}").into_bytes()
    }

    /// A console session cookie (the key it carries, its expiry and CSRF token).
    pub fn console_session() -> Vec<u8> {
        b"inlet/console-session/v1".to_vec()
    }

    /// A tenant API pagination cursor: bound to its company, so another tenant's cursor (or
    /// one tampered with) does not open.
    pub fn api_cursor(company_id: &str, list: &str) -> Vec<u8> {
        format!("inlet/api-cursor/v1/{company_id}/{list}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn sealed_values_open_with_the_same_context_only() {
        let ring = KeyRing::parse(K1, None).unwrap();
        let sealed = ring.seal(b"whsec_abc", b"src_1");
        assert!(sealed.starts_with("k1:"));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(ring.open(&sealed, b"src_1").unwrap(), b"whsec_abc");
        assert_eq!(ring.open(&sealed, b"src_2"), Err(KeyRingError::Open));
    }

    #[test]
    fn the_same_plaintext_seals_differently_each_time() {
        let ring = KeyRing::parse(K1, None).unwrap();
        assert_ne!(ring.seal(b"x", b""), ring.seal(b"x", b""));
    }

    #[test]
    fn rotation_seals_with_the_active_key_and_still_opens_old_values() {
        let old = KeyRing::parse(K1, None).unwrap();
        let sealed_old = old.seal(b"secret", b"c");
        let rotated = KeyRing::parse(&format!("{K1},{K2}"), Some("k2")).unwrap();
        assert_eq!(rotated.open(&sealed_old, b"c").unwrap(), b"secret");
        assert!(rotated.seal(b"secret", b"c").starts_with("k2:"));
        let without_k1 = KeyRing::parse(K2, None).unwrap();
        assert_eq!(
            without_k1.open(&sealed_old, b"c"),
            Err(KeyRingError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn tampered_or_malformed_values_do_not_open() {
        let ring = KeyRing::parse(K1, None).unwrap();
        let sealed = ring.seal(b"secret", b"c");
        let (kid, body) = sealed.split_once(':').unwrap();
        let mut bytes = B64.decode(body).unwrap();
        bytes[14] ^= 1;
        let tampered = format!("{kid}:{}", B64.encode(&bytes));
        assert_eq!(ring.open(&tampered, b"c"), Err(KeyRingError::Open));
        for bad in ["", "k1", "k1:", "k1:!!!", "k1:AAAA"] {
            assert!(ring.open(bad, b"c").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_key_specs_are_refused_with_the_entry_number() {
        assert_eq!(KeyRing::parse("", None).unwrap_err(), KeyRingError::Missing);
        assert_eq!(
            KeyRing::parse("k1:AAAA", None).unwrap_err(),
            KeyRingError::BadKey(1)
        );
        assert_eq!(
            KeyRing::parse(&format!("{K1},nokey"), None).unwrap_err(),
            KeyRingError::BadKey(2)
        );
        assert_eq!(
            KeyRing::parse(K1, Some("k9")).unwrap_err(),
            KeyRingError::UnknownActive("k9".into())
        );
        let debug = format!("{:?}", KeyRing::parse(K1, None).unwrap());
        assert!(!debug.contains("AAECAw"), "{debug}");
    }
}
