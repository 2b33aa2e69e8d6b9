//! Demo sources for the local stack and the samples in `events/`: one per provider, fixed ids
//! and secrets that exist only on a laptop. `inlet sources seed-demo` refuses production.

use crate::providers::{Provider, SigningSecret};
use inlet_core::CompanyId;

use super::{Source, SourceSecret, TenantRule, DEFAULT_BODY_LIMIT, DEFAULT_TOLERANCE_SECS};

pub const DEMO_COMPANY: &str = "demo_company";

/// `demo_<provider>`.
pub fn demo_source_id(provider: Provider) -> String {
    format!("demo_{provider}")
}

/// The local-only secret of a provider's demo source, in the shape that provider issues.
pub fn demo_secret(provider: Provider) -> SigningSecret {
    provider.demo_secret()
}

pub fn demo_sources() -> Vec<Source> {
    Provider::ALL
        .into_iter()
        .map(|provider| Source {
            source_id: demo_source_id(provider),
            provider,
            tenant: TenantRule::Fixed(
                CompanyId::parse(DEMO_COMPANY)
                    .unwrap_or_else(|_| unreachable!("constant id is valid")),
            ),
            secrets: vec![SourceSecret {
                secret: demo_secret(provider),
                not_after_ms: None,
            }],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
            rate_limit: None,
            body_limit: DEFAULT_BODY_LIMIT,
            enabled: true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_secret_has_its_providers_shape() {
        for source in demo_sources() {
            assert_eq!(
                source
                    .provider
                    .check_secret(source.secrets[0].secret.expose()),
                Ok(()),
                "{}",
                source.provider
            );
        }
    }
}
