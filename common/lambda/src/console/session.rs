//! The console's session: one cookie holding, sealed with the key ring (AES-256-GCM, its own
//! context), the tenant API key the user signed in with, what `/v1/me` said of it, its expiry
//! and the session's CSRF token. Nothing is stored on the server; a tampered, foreign or expired
//! cookie does not open and the browser is sent to sign in. The key is checked by the tenant
//! API on every request, so a revoked key ends its sessions at once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use inlet_core::crypto::{context, random_bytes, KeyRing};

pub const COOKIE: &str = "inlet_session";
/// The sign-in form's double-submit token (before there is a session).
pub const SIGN_IN_COOKIE: &str = "inlet_sign_in";
/// Where the console's cookies are sent.
pub const PATH: &str = "/console";
/// How long a session lasts.
pub const TTL_SECS: i64 = 8 * 3600;
/// The longest cookie value opened (a sealed session is about 300 characters).
const MAX_COOKIE: usize = 2048;

#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// The tenant API key (never shown, never logged).
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "c")]
    pub company: String,
    #[serde(rename = "s")]
    pub scopes: Vec<String>,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    #[serde(rename = "t")]
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, expires {})", self.company, self.expires_at)
    }
}

impl Session {
    pub fn new(key: String, company: String, scopes: Vec<String>, now_secs: i64) -> Session {
        Session {
            key,
            company,
            scopes,
            expires_at: now_secs + TTL_SECS,
            csrf: token(),
        }
    }

    /// Whether the key may do `scope` (what the console offers; the API decides).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope) || (scope != "operator" && self.has_admin())
    }

    fn has_admin(&self) -> bool {
        self.scopes.iter().any(|s| s == "admin")
    }

    pub fn seal(&self, keys: &KeyRing) -> String {
        let plain = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(keys.seal(&plain, &context::console_session()))
    }

    /// The session in a cookie value, if it opens and has not expired.
    pub fn open(value: &str, keys: &KeyRing, now_secs: i64) -> Option<Session> {
        if value.is_empty() || value.len() > MAX_COOKIE {
            return None;
        }
        let sealed = String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()?;
        let plain = keys.open(&sealed, &context::console_session()).ok()?;
        let session: Session = serde_json::from_slice(&plain).ok()?;
        (session.expires_at > now_secs).then_some(session)
    }

    /// Whether a form's token is this session's (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        same_token(&self.csrf, presented)
    }
}

/// 128 random bits, hex.
pub fn token() -> String {
    hex::encode(random_bytes(16))
}

pub fn same_token(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| {
        !expected.is_empty() && bool::from(p.as_bytes().ct_eq(expected.as_bytes()))
    })
}

/// A cookie's value from a `Cookie` header (the first of that name).
pub fn cookie<'h>(header: Option<&'h str>, name: &str) -> Option<&'h str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a value: HttpOnly, Secure, SameSite=Strict, path /console.
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> String {
    format!("{name}={value}; Path={PATH}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyRing {
        KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", None).unwrap()
    }

    #[test]
    fn a_session_opens_until_it_expires_and_not_once_tampered_with() {
        let session = Session::new(
            "ink_x".into(),
            "co_a".into(),
            vec!["events:read".into()],
            1000,
        );
        let sealed = session.seal(&keys());
        assert!(!sealed.contains("ink_x"));
        let opened = Session::open(&sealed, &keys(), 1000).unwrap();
        assert_eq!(
            (opened.key.as_str(), opened.company.as_str()),
            ("ink_x", "co_a")
        );
        assert!(Session::open(&sealed, &keys(), 1000 + TTL_SECS).is_none());
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(Session::open(&String::from_utf8(bytes).unwrap(), &keys(), 1000).is_none());
        let other =
            KeyRing::parse("k1:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=", None).unwrap();
        assert!(Session::open(&session.seal(&other), &keys(), 1000).is_none());
        assert!(Session::open("", &keys(), 1000).is_none());
    }

    #[test]
    fn the_csrf_token_must_be_presented_exactly() {
        let session = Session::new("k".into(), "co_a".into(), vec![], 0);
        assert!(session.csrf_matches(Some(&session.csrf.clone())));
        assert!(!session.csrf_matches(None));
        assert!(!session.csrf_matches(Some("")));
        assert!(!session.csrf_matches(Some(&session.csrf[1..])));
        assert!(!same_token("", Some("")));
    }

    #[test]
    fn admin_offers_every_tenant_view_but_not_the_operators() {
        let session = Session::new("k".into(), "co".into(), vec!["admin".into()], 0);
        assert!(session.has("payloads:read") && !session.has("operator"));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = Some("a=1; inlet_session_x=2; inlet_session=3");
        assert_eq!(cookie(header, COOKIE), Some("3"));
        assert_eq!(cookie(None, COOKIE), None);
    }
}
