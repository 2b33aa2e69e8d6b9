//! Reminder links: the tokens `track-click` (`GET /r/{token}`) reads, and recording a click.
//!
//! A token is the click's facts (reminder, variant, case, company, expiry) sealed with the key
//! ring (AES-256-GCM under a fixed context): unforgeable, unguessable (random nonce), opaque
//! (no ids readable in the link), and it names its key id, so rotating the ring keeps older
//! links working while their key is held. A click is recorded once per reminder and answered
//! with a 302 to the company's recovery URL; a bad, expired or unknown token is a plain 404.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use inlet_core::crypto::{context, KeyRing};
use inlet_core::{CompanyId, Failure};
use inlet_postgres::{Connection, Tenant};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickToken {
    #[serde(rename = "r")]
    pub reminder_id: i64,
    #[serde(rename = "v")]
    pub variant_id: Option<i64>,
    #[serde(rename = "c")]
    pub case_id: i64,
    #[serde(rename = "co")]
    pub company_id: String,
    /// Unix seconds.
    #[serde(rename = "x")]
    pub expires_at: i64,
}

/// `kid.base64url(nonce + ciphertext)`: safe in a URL path segment.
pub fn issue(keys: &KeyRing, token: &ClickToken) -> String {
    let facts = serde_json::to_vec(token).unwrap_or_default();
    let (key_id, sealed) = keys.seal_bytes(&facts, context::CLICK_TOKEN);
    format!("{key_id}.{}", URL_SAFE_NO_PAD.encode(sealed))
}

/// The token's facts, or `None` when it is malformed, forged, sealed with an unknown key or
/// expired at `now`.
pub fn read(keys: &KeyRing, text: &str, now: i64) -> Option<ClickToken> {
    if text.len() > 512 {
        return None;
    }
    let (key_id, encoded) = text.split_once('.')?;
    let sealed = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let facts = keys
        .open_bytes(key_id, &sealed, context::CLICK_TOKEN)
        .ok()?;
    let token: ClickToken = serde_json::from_slice(&facts).ok()?;
    (token.expires_at > now).then_some(token)
}

/// Records the click (once per reminder) and returns where to send the member, or `None` when
/// the company or its recovery URL is unknown.
pub async fn record(
    connection: &mut Connection,
    token: &ClickToken,
) -> Result<Option<String>, Failure> {
    let Ok(company) = CompanyId::parse(&token.company_id) else {
        return Ok(None);
    };
    let (tx, tenant) = connection.tenant_tx(&company).await?;
    if tenant == Tenant::Unknown {
        return Ok(None);
    }
    if let Some(variant_id) = token.variant_id {
        tx.execute(
            "INSERT INTO ab_test_conversions (company_id, variant_id, case_id, reminder_id, kind)
             SELECT get_current_company_id(), $1, r.case_id, r.id, 'click'
               FROM reminders r WHERE r.id = $2 AND r.case_id = $3
             ON CONFLICT DO NOTHING",
            &[&variant_id, &token.reminder_id, &token.case_id],
        )
        .await?;
    }
    let url: Option<String> = tx
        .query_one(
            "SELECT settings ->> 'recovery_url' FROM companies WHERE company_id = get_current_company_id()",
            &[],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(url.filter(|u| u.starts_with("https://") || u.starts_with("http://")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyRing {
        KeyRing::parse("test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", None).unwrap()
    }

    fn token(expires_at: i64) -> ClickToken {
        ClickToken {
            reminder_id: 7,
            variant_id: Some(3),
            case_id: 2,
            company_id: "co_a".into(),
            expires_at,
        }
    }

    #[test]
    fn a_token_reads_back_until_it_expires_and_hides_its_ids() {
        let text = issue(&keys(), &token(1_000));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{text}"
        );
        assert!(!text.contains("co_a"));
        assert_eq!(read(&keys(), &text, 999), Some(token(1_000)));
        assert_eq!(read(&keys(), &text, 1_000), None, "expired");
    }

    #[test]
    fn forged_truncated_or_foreign_tokens_read_as_nothing() {
        let text = issue(&keys(), &token(1_000));
        let mut flipped = text.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::from_utf8(flipped).unwrap(),
            text[..text.len() - 4].to_owned(),
            text.replacen("test.", "other.", 1),
            "nodot".to_owned(),
            String::new(),
            "x".repeat(600),
        ] {
            assert_eq!(read(&keys(), &bad, 0), None, "{bad}");
        }
        let other =
            KeyRing::parse("test:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", None).unwrap();
        assert_eq!(
            read(&other, &text, 0),
            None,
            "another ring with the same key id"
        );
    }
}
