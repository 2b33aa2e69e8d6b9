use std::fmt;

use tokio_postgres::{Client, Transaction};

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
    pub fn parse(value: &str) -> Result<Self, InvalidCompanyId> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if ok {
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

/// Begins a transaction whose tenant context is `company`: row-level security then shows and
/// accepts only that company's rows. The context is transaction-local (`SET LOCAL`), so a
/// pooled or reused connection never carries it into the next unit of work.
pub async fn tenant_transaction<'a>(
    client: &'a mut Client,
    company: &CompanyId,
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT set_company_context($1)", &[&company.as_str()])
        .await?;
    Ok(tx)
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
}
