//! A member's export: their rows and every ledger event that names them, as NDJSON, written
//! by the CLI to stdout or by the export function (as a job) to a file for the exports bucket.

use tokio_postgres::types::ToSql;

use super::*;

fn write_line(
    out: &mut impl Write,
    counts: &mut Counts,
    kind: &'static str,
    line: &Value,
) -> Result<(), PrivacyError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    *counts.entry(kind).or_default() += 1;
    Ok(())
}

/// Rows of `sql` (one parameter: the given ids), each written as a line of `kind`.
async fn export_rows(
    tx: &Tx<'_>,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
    kind: &'static str,
    out: &mut impl Write,
    counts: &mut Counts,
) -> Result<(), PrivacyError> {
    for row in tx.query(sql, params).await? {
        let line: Value = row.get(0);
        let mut line = line;
        if let Value::Object(map) = &mut line {
            map.insert("type".into(), Value::String(kind.into()));
        }
        write_line(out, counts, kind, &line)?;
    }
    Ok(())
}

/// Writes everything Inlet holds about the member as NDJSON (one JSON object per line, each with
/// its `type`), records the request and audits it; the counts of what was written.
pub async fn export(
    connection: &mut Connection,
    keys: &KeyRing,
    actor: &Actor,
    company: &CompanyId,
    member_id: &str,
    out: &mut impl Write,
) -> Result<Counts, PrivacyError> {
    check_member_id(member_id)?;
    let (tx, tenant) = connection.tenant_tx(company).await?;
    let found = match tenant {
        Tenant::Known => footprint(&tx, keys, company, member_id).await?,
        Tenant::Unknown => None,
    };
    let Some(found) = found else {
        if tenant == Tenant::Known {
            record_not_found(tx, actor, company, member_id, "export").await?;
        }
        return Err(PrivacyError::NotFound(member_id.to_owned()));
    };
    let counts = write_export(&tx, keys, company, &found, out).await?;
    record(
        &tx,
        actor,
        company,
        member_id,
        "export",
        "completed",
        &counts,
    )
    .await?;
    tx.commit().await?;
    Ok(counts)
}

/// Writes the member's lines: their rows, then every ledger event naming them.
async fn write_export(
    tx: &Tx<'_>,
    keys: &KeyRing,
    company: &CompanyId,
    found: &Footprint,
    out: &mut impl Write,
) -> Result<Counts, PrivacyError> {
    let mut counts = Counts::new();
    for (provider, id) in &found.members {
        let row = tx
            .query_one(
                "SELECT status, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at,
                        email_enc, email_key_id, name_enc, name_key_id
                   FROM members WHERE company_id = get_current_company_id() AND provider = $1 AND external_id = $2",
                &[provider, id],
            )
            .await?;
        let open = |enc: &str, kid: &str, ctx: Vec<u8>| -> Option<String> {
            let sealed: Option<Vec<u8>> = row.get(enc);
            let key_id: Option<String> = row.get(kid);
            String::from_utf8(keys.open_bytes(&key_id?, &sealed?, &ctx).ok()?).ok()
        };
        let line = json!({
            "type": "member",
            "provider": provider,
            "id": id,
            "email": open("email_enc", "email_key_id", context::member_email(company.as_str(), provider, id)),
            "name": open("name_enc", "name_key_id", context::member_name(company.as_str(), provider, id)),
            "status": row.get::<_, String>("status"),
            "created_at": row.get::<_, String>("created_at"),
        });
        write_line(out, &mut counts, "member", &line)?;
    }
    let membership_ids: Vec<String> = found.memberships.iter().map(|(_, id)| id.clone()).collect();
    let payment_ids: Vec<String> = found.payments.iter().map(|(_, id)| id.clone()).collect();
    // Each kind of row the member has, by the ids that name it: (kind, query, ids).
    let kinds: [(&'static str, &'static str, &(dyn ToSql + Sync)); 6] = [
        (
            "membership",
            "SELECT to_jsonb(m) - 'company_id' FROM memberships m
              WHERE company_id = get_current_company_id() AND external_id = ANY($1) ORDER BY external_id",
            &membership_ids,
        ),
        (
            "payment",
            "SELECT to_jsonb(p) - 'company_id' FROM payments p
              WHERE company_id = get_current_company_id() AND external_id = ANY($1) ORDER BY external_id",
            &payment_ids,
        ),
        (
            "recovery_case",
            "SELECT to_jsonb(c) - 'company_id' FROM recovery_cases c
              WHERE company_id = get_current_company_id() AND id = ANY($1) ORDER BY id",
            &found.case_ids,
        ),
        (
            "reminder",
            "SELECT to_jsonb(r) - 'company_id' || jsonb_build_object('variant', v.name, 'channel', v.channel)
               FROM reminders r
               LEFT JOIN ab_test_usage u ON u.reminder_id = r.id
               LEFT JOIN ab_test_variants v ON v.id = u.variant_id
              WHERE r.company_id = get_current_company_id() AND r.case_id = ANY($1) ORDER BY r.id",
            &found.case_ids,
        ),
        (
            "delivery_attempt",
            "SELECT to_jsonb(d) - 'company_id' FROM delivery_attempts d
               JOIN reminders r ON r.id = d.reminder_id
              WHERE d.company_id = get_current_company_id() AND r.case_id = ANY($1) ORDER BY d.id",
            &found.case_ids,
        ),
        (
            "click_or_conversion",
            "SELECT to_jsonb(a) - 'company_id' FROM ab_test_conversions a
              WHERE company_id = get_current_company_id() AND case_id = ANY($1) ORDER BY id",
            &found.case_ids,
        ),
    ];
    for (kind, sql, ids) in kinds {
        export_rows(tx, sql, &[ids], kind, out, &mut counts).await?;
    }
    let needles = found.needles();
    let mut write_error = None;
    scan_events(tx, keys, company, &needles, |event| {
        if write_error.is_none() {
            if let Err(e) = write_line(out, &mut counts, "event", &event.line) {
                write_error = Some(e);
            }
        }
        Ok(())
    })
    .await?;
    if let Some(error) = write_error {
        return Err(error);
    }
    out.flush()?;
    Ok(counts)
}

/// The exports queue's message: which request to run. The member id stays in the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportMessage {
    pub company_id: String,
    pub request_id: i64,
}

/// An export job's state, as the tenant API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    /// pending, completed, not_found or failed.
    pub status: String,
    pub object_key: Option<String>,
    pub counts: Value,
}

/// Where an export's file goes in the exports bucket.
pub fn export_object_key(company: &CompanyId, request_id: i64) -> String {
    format!("exports/{company}/{request_id}.ndjson")
}

/// Records a pending export for the export function (the member id sealed in the row, never
/// in the queue message); its request id. A member the company does not hold is `NotFound`,
/// recorded.
pub async fn request_export(
    connection: &mut Connection,
    keys: &KeyRing,
    actor: &Actor,
    company: &CompanyId,
    member_id: &str,
) -> Result<i64, PrivacyError> {
    check_member_id(member_id)?;
    let (tx, tenant) = connection.tenant_tx(company).await?;
    if tenant == Tenant::Unknown {
        return Err(PrivacyError::NotFound(member_id.to_owned()));
    }
    let held = tx
        .query_opt(
            "SELECT 1 FROM members WHERE company_id = get_current_company_id() AND external_id = $1 LIMIT 1",
            &[&member_id],
        )
        .await?
        .is_some();
    if !held {
        record_not_found(tx, actor, company, member_id, "export").await?;
        return Err(PrivacyError::NotFound(member_id.to_owned()));
    }
    let hash = subject_hash(company, member_id);
    let (key_id, sealed) = keys.seal_bytes(
        member_id.as_bytes(),
        &context::privacy_subject(company.as_str(), &hash),
    );
    let id: i64 = tx
        .query_one(
            "INSERT INTO privacy_requests (company_id, kind, subject_hash, requested_by, status,
                                           subject_enc, subject_key_id)
             VALUES (get_current_company_id(), 'export', $1, $2, 'pending', $3, $4) RETURNING id",
            &[&hash, &actor.to_string(), &sealed, &key_id],
        )
        .await?
        .get(0);
    audit::record(
        &tx,
        &Entry {
            company: Some(company),
            actor,
            action: "privacy.export_requested",
            target: &format!("privacy_request:{id}"),
            request_id: None,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Writes a pending export's lines to `out`. `Ok(None)`: nothing to do (no such request, or it
/// is no longer pending: a redelivered job).
pub async fn write_pending_export(
    connection: &mut Connection,
    keys: &KeyRing,
    company: &CompanyId,
    request_id: i64,
    out: &mut impl Write,
) -> Result<Option<Counts>, PrivacyError> {
    let (tx, _) = connection.tenant_tx(company).await?;
    let Some(row) = tx
        .query_opt(
            "SELECT subject_hash, subject_enc, subject_key_id FROM privacy_requests
              WHERE company_id = get_current_company_id() AND id = $1 AND kind = 'export'
                AND status = 'pending'",
            &[&request_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let hash: String = row.get("subject_hash");
    let sealed: Option<Vec<u8>> = row.get("subject_enc");
    let key_id: Option<String> = row.get("subject_key_id");
    let member_id = sealed
        .zip(key_id)
        .and_then(|(sealed, key_id)| {
            keys.open_bytes(
                &key_id,
                &sealed,
                &context::privacy_subject(company.as_str(), &hash),
            )
            .ok()
        })
        .and_then(|plain| String::from_utf8(plain).ok())
        .ok_or_else(|| {
            PrivacyError::Database(Failure::permanent(
                inlet_core::DeadLetterCode::DeliveryUnconfigured,
                "the export's member id does not open; is its key still in INLET_KEYS?",
            ))
        })?;
    let counts = match footprint(&tx, keys, company, &member_id).await? {
        Some(found) => write_export(&tx, keys, company, &found, out).await?,
        // Erased since it was requested: an empty export.
        None => Counts::new(),
    };
    tx.commit().await?;
    Ok(Some(counts))
}

/// Ends a pending export: `completed` with the object's key, or `failed`; the sealed member id
/// is cleared either way. Audited.
pub async fn finish_export(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
    request_id: i64,
    result: Result<(&str, &Counts), &str>,
) -> Result<(), Failure> {
    let (tx, _) = connection.tenant_tx(company).await?;
    let (status, object_key, counts) = match result {
        Ok((key, counts)) => (
            "completed",
            Some(key.to_owned()),
            serde_json::to_value(counts).unwrap_or_else(|_| json!({})),
        ),
        Err(reason) => ("failed", None, json!({ "reason": reason })),
    };
    let changed = tx
        .execute(
            "UPDATE privacy_requests SET status = $2, object_key = $3, counts = $4,
                    completed_at = now(), subject_enc = NULL, subject_key_id = NULL
              WHERE company_id = get_current_company_id() AND id = $1 AND status = 'pending'",
            &[&request_id, &status, &object_key, &counts],
        )
        .await?;
    if changed == 1 {
        audit::record(
            &tx,
            &Entry {
                company: Some(company),
                actor,
                action: "privacy.export",
                target: &format!("privacy_request:{request_id}"),
                request_id: None,
                details: json!({ "status": status, "counts": counts }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An export request of this tenant, or None (also when it is another tenant's).
pub async fn export_job(tx: &Tx<'_>, request_id: i64) -> Result<Option<ExportJob>, Failure> {
    let row = tx
        .query_opt(
            "SELECT status, object_key, counts FROM privacy_requests
              WHERE company_id = get_current_company_id() AND id = $1 AND kind = 'export'",
            &[&request_id],
        )
        .await?;
    Ok(row.map(|row| ExportJob {
        status: row.get("status"),
        object_key: row.get("object_key"),
        counts: row.get("counts"),
    }))
}
