//! A webhook source: who sends to `/webhooks/{provider}/{source_id}` and how to check it.

use std::borrow::Cow;

use crate::providers::{Provider, SigningSecret};
use inlet_core::CompanyId;

pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub source_id: String,
    pub provider: Provider,
    pub tenant: TenantRule,
    /// Any active one verifies: rotation adds the new secret and gives the old a not-after.
    pub secrets: Vec<SourceSecret>,
    pub tolerance_secs: i64,
    pub rate_limit: Option<RateLimit>,
    pub body_limit: usize,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSecret {
    pub secret: SigningSecret,
    /// Unix milliseconds after which this secret no longer verifies.
    pub not_after_ms: Option<i64>,
}

/// Which tenant an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRule {
    /// Every event of the source belongs to one company.
    Fixed(CompanyId),
    /// A JSON pointer into the payload (`/company_id` for Whop, `/account` for Stripe Connect).
    Pointer(String),
}

/// At most `requests` per `window_secs` per source (fixed window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window_secs: u32,
}

/// One fixed window of a [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Windows since the Unix epoch: part of the counter's key.
    pub index: i64,
    pub end_ms: i64,
}

impl RateLimit {
    /// The window `now_ms` falls in.
    pub fn window(&self, now_ms: i64) -> RateWindow {
        let window_ms = i64::from(self.window_secs.max(1)) * 1000;
        let index = now_ms.div_euclid(window_ms);
        RateWindow {
            index,
            end_ms: (index + 1) * window_ms,
        }
    }
}

impl RateWindow {
    /// Whole seconds until the window ends, at least 1: the `Retry-After` of a 429.
    pub fn retry_after_secs(&self, now_ms: i64) -> u64 {
        u64::try_from((self.end_ms - now_ms).div_euclid(1000) + 1).unwrap_or(1)
    }
}

impl Source {
    /// Adds `secret` as the newest; the secrets still valid keep verifying until
    /// `now_ms + overlap_ms` (a sender switches over in that time), the expired ones are
    /// dropped. Returns when the previous secrets stop verifying.
    pub fn rotate(&mut self, secret: SigningSecret, now_ms: i64, overlap_ms: i64) -> i64 {
        let until = now_ms + overlap_ms;
        self.secrets
            .retain(|s| s.not_after_ms.is_none_or(|t| t > now_ms));
        for old in &mut self.secrets {
            old.not_after_ms = Some(old.not_after_ms.map_or(until, |t| t.min(until)));
        }
        self.secrets.push(SourceSecret {
            secret,
            not_after_ms: None,
        });
        until
    }

    /// Whether the source's events all belong to `company` (what a tenant may manage).
    pub fn belongs_to(&self, company: &CompanyId) -> bool {
        matches!(&self.tenant, TenantRule::Fixed(c) if c == company)
    }

    pub fn active_secrets(&self, now_ms: i64) -> impl Iterator<Item = &SigningSecret> {
        self.secrets
            .iter()
            .filter(move |s| s.not_after_ms.is_none_or(|t| now_ms < t))
            .map(|s| &s.secret)
    }
}

impl TenantRule {
    /// The company an event belongs to; None when the payload does not name a valid one.
    pub fn resolve(&self, body: &[u8]) -> Option<Cow<'_, CompanyId>> {
        match self {
            TenantRule::Fixed(company) => Some(Cow::Borrowed(company)),
            TenantRule::Pointer(pointer) => {
                let company = super::json_pointer::string_at(body, pointer)?;
                CompanyId::parse(&company).ok().map(Cow::Owned)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_from_a_pointer_must_be_a_valid_company_id() {
        let rule = TenantRule::Pointer("/account".into());
        assert_eq!(
            rule.resolve(br#"{"account":"acct_1"}"#)
                .map(Cow::into_owned),
            Some(CompanyId::parse("acct_1").unwrap())
        );
        assert_eq!(
            rule.resolve(br#"{"account":"bad id"}"#)
                .map(Cow::into_owned),
            None
        );
        assert_eq!(rule.resolve(br#"{"account":5}"#).map(Cow::into_owned), None);
        assert_eq!(rule.resolve(br#"{}"#).map(Cow::into_owned), None);
        assert_eq!(rule.resolve(b"token=x").map(Cow::into_owned), None);
        let nested = TenantRule::Pointer("/data/company_id".into());
        assert_eq!(
            nested
                .resolve(br#"{"data":{"company_id":"biz_9"}}"#)
                .unwrap()
                .as_str(),
            "biz_9"
        );
    }

    #[test]
    fn a_rate_window_ends_on_its_boundary_and_retry_after_rounds_up() {
        let limit = RateLimit {
            requests: 1,
            window_secs: 60,
        };
        let window = limit.window(120_500);
        assert_eq!(
            window,
            RateWindow {
                index: 2,
                end_ms: 180_000
            }
        );
        assert_eq!(window.retry_after_secs(120_500), 60);
        assert_eq!(window.retry_after_secs(179_999), 1);
        assert_eq!(limit.window(180_000).index, 3);
        // A zero-length window is treated as one second, never a division by zero.
        assert_eq!(
            RateLimit {
                requests: 1,
                window_secs: 0
            }
            .window(1_500)
            .index,
            1
        );
    }

    #[test]
    fn secrets_past_their_not_after_no_longer_verify() {
        let source = Source {
            source_id: "src".into(),
            provider: Provider::Stripe,
            tenant: TenantRule::Fixed(CompanyId::parse("co").unwrap()),
            secrets: vec![
                SourceSecret {
                    secret: SigningSecret::new("old"),
                    not_after_ms: Some(1_000),
                },
                SourceSecret {
                    secret: SigningSecret::new("new"),
                    not_after_ms: None,
                },
            ],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            rate_limit: None,
            body_limit: DEFAULT_BODY_LIMIT,
            enabled: true,
        };
        assert_eq!(source.active_secrets(999).count(), 2);
        let after: Vec<_> = source
            .active_secrets(1_000)
            .map(|s| s.expose().to_owned())
            .collect();
        assert_eq!(after, ["new"]);
    }

    #[test]
    fn rotating_keeps_live_secrets_for_the_overlap_and_drops_expired_ones() {
        let secret = |text: &str, not_after_ms| SourceSecret {
            secret: SigningSecret::new(text),
            not_after_ms,
        };
        let mut source = Source {
            source_id: "src".into(),
            provider: Provider::Stripe,
            tenant: TenantRule::Fixed(CompanyId::parse("co").unwrap()),
            secrets: vec![
                secret("expired", Some(500)),
                secret("ending soon", Some(1_500)),
                secret("current", None),
            ],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            rate_limit: None,
            body_limit: DEFAULT_BODY_LIMIT,
            enabled: true,
        };
        let until = source.rotate(SigningSecret::new("new"), 1_000, 10_000);
        assert_eq!(until, 11_000);
        let kept: Vec<(&str, Option<i64>)> = source
            .secrets
            .iter()
            .map(|s| (s.secret.expose(), s.not_after_ms))
            .collect();
        assert_eq!(
            kept,
            vec![
                ("ending soon", Some(1_500)),
                ("current", Some(11_000)),
                ("new", None)
            ]
        );
        assert!(source.belongs_to(&CompanyId::parse("co").unwrap()));
        assert!(!source.belongs_to(&CompanyId::parse("other").unwrap()));
    }
}
