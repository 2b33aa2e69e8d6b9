//! Offboarding a company: every row it has, in every tenant table, in one transaction,
//! audited. The audit log keeps the company's chain, which records the offboarding.

use serde_json::json;

use inlet_core::{CompanyId, Failure};
use inlet_postgres::{Connection, Tenant};

use crate::audit::{self, Actor, Entry};

/// Every tenant table but the audit log, children before parents: what offboarding empties.
/// `offboarding_leaves_no_row_of_the_company_in_any_tenant_table` fails when a new tenant table
/// is missing here.
pub const OFFBOARDED_TABLES: [(&str, &str); 16] = [
    (
        "ab_test_conversions",
        "DELETE FROM ab_test_conversions WHERE company_id = get_current_company_id()",
    ),
    (
        "ab_test_usage",
        "DELETE FROM ab_test_usage WHERE company_id = get_current_company_id()",
    ),
    (
        "delivery_attempts",
        "DELETE FROM delivery_attempts WHERE company_id = get_current_company_id()",
    ),
    (
        "reminders",
        "DELETE FROM reminders WHERE company_id = get_current_company_id()",
    ),
    (
        "ab_test_variants",
        "DELETE FROM ab_test_variants WHERE company_id = get_current_company_id()",
    ),
    (
        "reminder_endpoints",
        "DELETE FROM reminder_endpoints WHERE company_id = get_current_company_id()",
    ),
    (
        "recovery_cases",
        "DELETE FROM recovery_cases WHERE company_id = get_current_company_id()",
    ),
    (
        "payments",
        "DELETE FROM payments WHERE company_id = get_current_company_id()",
    ),
    (
        "memberships",
        "DELETE FROM memberships WHERE company_id = get_current_company_id()",
    ),
    (
        "members",
        "DELETE FROM members WHERE company_id = get_current_company_id()",
    ),
    (
        "object_versions",
        "DELETE FROM object_versions WHERE company_id = get_current_company_id()",
    ),
    (
        "source_activity",
        "DELETE FROM source_activity WHERE company_id = get_current_company_id()",
    ),
    (
        "webhook_events",
        "DELETE FROM webhook_events WHERE company_id = get_current_company_id()",
    ),
    (
        "api_keys",
        "DELETE FROM api_keys WHERE company_id = get_current_company_id()",
    ),
    (
        "privacy_requests",
        "DELETE FROM privacy_requests WHERE company_id = get_current_company_id()",
    ),
    (
        "companies",
        "DELETE FROM companies WHERE company_id = get_current_company_id()",
    ),
];

/// Offboarding: every row of the company, in one transaction, audited (the audit log keeps its
/// rows, which record this). `Ok(None)` when the company does not exist.
pub async fn offboard(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
) -> Result<Option<std::collections::BTreeMap<&'static str, u64>>, Failure> {
    let (tx, tenant) = connection.tenant_tx(company).await?;
    if tenant == Tenant::Unknown {
        return Ok(None);
    }
    let mut deleted = std::collections::BTreeMap::new();
    for (table, sql) in OFFBOARDED_TABLES {
        let n = tx.execute(sql, &[]).await?;
        if n > 0 {
            deleted.insert(table, n);
        }
    }
    audit::record(
        &tx,
        &Entry {
            company: Some(company),
            actor,
            action: "company.delete",
            target: company.as_str(),
            request_id: None,
            details: json!({ "deleted": deleted }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(deleted))
}
