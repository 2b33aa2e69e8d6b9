//! Offboarding a company deletes every row it has in every tenant table (found in the catalog,
//! so a new table cannot be forgotten), leaves other companies whole, and is audited.

use inlet_core::CompanyId;
use inlet_domain::audit::{self, Actor};
use inlet_domain::offboarding;
use inlet_postgres::Connection;
use inlet_testing::TestDb;

use crate::tenancy::fixture;

const A: &str = "co_leaving";
const B: &str = "co_staying";

async fn rows_of(admin: &tokio_postgres::Client, table: &str, company: &str) -> i64 {
    admin
        .query_one(
            &format!("SELECT count(*) FROM {table} WHERE company_id = $1"),
            &[&company],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn offboarding_leaves_no_row_of_the_company_in_any_tenant_table() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let tables = inlet_postgres::audit::tenant_tables(&admin).await.unwrap();
    for company in [A, B] {
        admin
            .execute(fixture("companies").unwrap(), &[&company, &"name"])
            .await
            .unwrap();
    }
    for table in tables.iter().filter(|t| *t != "companies") {
        let insert = fixture(table).unwrap_or_else(|| panic!("no fixture for {table}"));
        for company in [A, B] {
            admin
                .execute(insert, &[&company, &format!("{table}_{company}")])
                .await
                .unwrap();
        }
    }
    let mut owner = Connection::from(db.admin().await);
    let actor = Actor::Operator("offboarder".into());
    let company = CompanyId::parse(A).unwrap();
    let deleted = offboarding::offboard(&mut owner, &actor, &company)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.get("companies"), Some(&1));

    for table in &tables {
        let kept = rows_of(&admin, table, B).await;
        assert!(kept >= 1, "{table}: the other company's rows were touched");
        let left = rows_of(&admin, table, A).await;
        if table == "audit_log" {
            assert!(
                left >= 2,
                "the audit log keeps the company's chain and records the offboarding"
            );
        } else {
            assert_eq!(
                left, 0,
                "{table} still holds rows of the offboarded company: add it to offboarding::OFFBOARDED_TABLES"
            );
        }
    }
    let last: String = admin
        .query_one(
            "SELECT action FROM audit_log WHERE company_id = $1 ORDER BY seq DESC LIMIT 1",
            &[&A],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "company.delete");
    assert!(audit::verify(&admin, None).await.unwrap().broken.is_empty());
    // A second time: nothing to delete.
    assert_eq!(
        offboarding::offboard(&mut owner, &actor, &company)
            .await
            .unwrap(),
        None
    );
}
