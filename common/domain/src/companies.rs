//! Tenants: a company's row and its settings, validated before anything is written.
//!
//! Settings are a JSON object with known keys only; each is checked for its type and range, and
//! an error names the field. Every statement runs in the company's own tenant context, so the
//! operator CLI (connecting as the owner, whom row-level security also binds) changes exactly
//! one tenant at a time.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use inlet_core::{CompanyId, Failure};
use inlet_postgres::{Connection, Tenant};

use crate::audit::{self, Actor, Entry};

/// Retention of ledger rows, in days: at least a week, so late provider retries still dedupe.
pub const MIN_RETENTION_DAYS: u32 = 7;
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Retention of sealed payloads (the ledger row stays), in days.
pub const DEFAULT_PAYLOAD_RETENTION_DAYS: u32 = 30;
/// A company's display name: 1-200 characters, no control characters.
pub const MAX_NAME_LEN: usize = 200;

/// A company's settings. Absent keys take their defaults where they are used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Hours after a failed payment at which reminders are due (default 0, 24, 72, 168).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_offsets_hours: Option<Vec<i32>>,
    /// `webhook` or `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_channel: Option<String>,
    /// Where a reminder's link leads (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_url: Option<String>,
    /// `weighted` or `thompson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_allocation: Option<String>,
    /// Ledger rows older than this many days are deleted (at least 7; default 90).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Sealed payloads older than this many days are dropped (default 30; at most the
    /// retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_retention_days: Option<u32>,
}

/// Why settings (or a name) were refused: the field and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub expected: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.expected)
    }
}

impl std::error::Error for Invalid {}

fn invalid(field: &str, expected: impl Into<String>) -> Invalid {
    Invalid {
        field: field.to_owned(),
        expected: expected.into(),
    }
}

const KNOWN: [&str; 6] = [
    "reminder_offsets_hours",
    "reminder_channel",
    "recovery_url",
    "ab_allocation",
    "retention_days",
    "payload_retention_days",
];

fn typed<T: serde::de::DeserializeOwned>(
    field: &str,
    value: &Value,
    expected: &str,
) -> Result<Option<T>, Invalid> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value.clone())
        .map(Some)
        .map_err(|_| invalid(field, expected))
}

impl Settings {
    /// Reads and checks settings from JSON: an object with known keys of the right types.
    pub fn from_json(value: &Value) -> Result<Settings, Invalid> {
        let object = value
            .as_object()
            .ok_or_else(|| invalid("settings", "must be a JSON object"))?;
        Self::from_object(object)
    }

    fn from_object(object: &Map<String, Value>) -> Result<Settings, Invalid> {
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(
                unknown,
                format!("is not a setting; known: {}", KNOWN.join(", ")),
            ));
        }
        let get = |key: &str| object.get(key).unwrap_or(&Value::Null);
        let settings = Settings {
            reminder_offsets_hours: typed(
                "reminder_offsets_hours",
                get("reminder_offsets_hours"),
                "must be a list of whole hours",
            )?,
            reminder_channel: typed(
                "reminder_channel",
                get("reminder_channel"),
                "must be \"webhook\" or \"email\"",
            )?,
            recovery_url: typed("recovery_url", get("recovery_url"), "must be a URL")?,
            ab_allocation: typed(
                "ab_allocation",
                get("ab_allocation"),
                "must be \"weighted\" or \"thompson\"",
            )?,
            retention_days: typed(
                "retention_days",
                get("retention_days"),
                "must be a whole number of days",
            )?,
            payload_retention_days: typed(
                "payload_retention_days",
                get("payload_retention_days"),
                "must be a whole number of days",
            )?,
        };
        settings.check()?;
        Ok(settings)
    }

    /// The ranges and vocabularies the types cannot say.
    fn check(&self) -> Result<(), Invalid> {
        if let Some(offsets) = &self.reminder_offsets_hours {
            let sorted = offsets.windows(2).all(|w| w[0] < w[1]);
            if offsets.is_empty()
                || offsets.len() > 10
                || !sorted
                || offsets.iter().any(|h| !(0..=8760).contains(h))
            {
                return Err(invalid(
                    "reminder_offsets_hours",
                    "must be 1-10 increasing whole hours between 0 and 8760",
                ));
            }
        }
        if let Some(channel) = &self.reminder_channel {
            if !matches!(channel.as_str(), "webhook" | "email") {
                return Err(invalid(
                    "reminder_channel",
                    "must be \"webhook\" or \"email\"",
                ));
            }
        }
        if let Some(url) = &self.recovery_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.len() > 2048 || url.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "recovery_url",
                    "must be an http(s) URL of at most 2048 characters",
                ));
            }
        }
        if let Some(allocation) = &self.ab_allocation {
            if !matches!(allocation.as_str(), "weighted" | "thompson") {
                return Err(invalid(
                    "ab_allocation",
                    "must be \"weighted\" or \"thompson\"",
                ));
            }
        }
        let retention = self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        if !(MIN_RETENTION_DAYS..=3650).contains(&retention) {
            return Err(invalid(
                "retention_days",
                format!("must be between {MIN_RETENTION_DAYS} and 3650 days"),
            ));
        }
        if let Some(payload) = self.payload_retention_days {
            if payload == 0 || payload > retention {
                return Err(invalid(
                    "payload_retention_days",
                    format!("must be between 1 and the retention ({retention} days)"),
                ));
            }
        }
        Ok(())
    }

    /// These settings with `changes` applied: a key set to null goes back to its default.
    pub fn merged(&self, changes: &Value) -> Result<Settings, Invalid> {
        let changes = changes
            .as_object()
            .ok_or_else(|| invalid("settings", "must be a JSON object"))?;
        let mut object = match serde_json::to_value(self) {
            Ok(Value::Object(object)) => object,
            _ => Map::new(),
        };
        for (key, value) in changes {
            if value.is_null() {
                object.remove(key);
            } else {
                object.insert(key.clone(), value.clone());
            }
        }
        // Unknown keys among the changes are refused by name, nulls included.
        if let Some(unknown) = changes.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(
                unknown,
                format!("is not a setting; known: {}", KNOWN.join(", ")),
            ));
        }
        Self::from_object(&object)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Map::new()))
    }
}

/// Checks a display name.
pub fn check_name(name: &str) -> Result<&str, Invalid> {
    let trimmed = name.trim();
    if trimmed.is_empty()
        || trimmed.chars().count() > MAX_NAME_LEN
        || trimmed.chars().any(char::is_control)
    {
        return Err(invalid(
            "name",
            format!("must be 1-{MAX_NAME_LEN} characters without control characters"),
        ));
    }
    Ok(trimmed)
}

/// A company as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Company {
    pub id: CompanyId,
    pub name: String,
    pub settings: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// Whether the company exists (one round trip, in its own tenant context).
pub async fn exists(connection: &mut Connection, company: &CompanyId) -> Result<bool, Failure> {
    let (tx, tenant) = connection.tenant_tx(company).await?;
    tx.commit().await?;
    Ok(tenant == Tenant::Known)
}

/// Creates a company, audited. `Ok(false)` when it already exists (nothing is changed then).
pub async fn add(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
    name: &str,
    settings: &Settings,
) -> Result<bool, Failure> {
    let (tx, _) = connection.tenant_tx(company).await?;
    let inserted = tx
        .execute(
            "INSERT INTO companies (company_id, name, settings) VALUES (get_current_company_id(), $1, $2)
             ON CONFLICT (company_id) DO NOTHING",
            &[&name, &settings.to_json()],
        )
        .await?;
    if inserted == 1 {
        audit::record(
            &tx,
            &Entry {
                company: Some(company),
                actor,
                action: "company.add",
                target: company.as_str(),
                request_id: None,
                details: json!({ "settings": setting_names(&settings.to_json()) }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(inserted == 1)
}

/// The keys of a settings object: what changed, without the values.
fn setting_names(settings: &Value) -> Vec<String> {
    settings
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// One company, or None.
pub async fn get(
    connection: &mut Connection,
    company: &CompanyId,
) -> Result<Option<Company>, Failure> {
    let (tx, _) = connection.tenant_tx(company).await?;
    let row = tx
        .query_opt(
            "SELECT company_id, name, settings,
                    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at
               FROM companies WHERE company_id = get_current_company_id()",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(row.map(|row| Company {
        id: company.clone(),
        name: row.get("name"),
        settings: row.get("settings"),
        created_at: row.get("created_at"),
    }))
}

/// Changes a company's name and/or settings (already merged and checked), audited.
pub async fn update(
    connection: &mut Connection,
    actor: &Actor,
    company: &CompanyId,
    name: Option<&str>,
    settings: Option<&Settings>,
) -> Result<bool, Failure> {
    let (tx, _) = connection.tenant_tx(company).await?;
    let changed = tx
        .execute(
            "UPDATE companies SET name = coalesce($1, name), settings = coalesce($2, settings)
              WHERE company_id = get_current_company_id()",
            &[&name, &settings.map(Settings::to_json)],
        )
        .await?;
    if changed == 1 {
        audit::record(
            &tx,
            &Entry {
                company: Some(company),
                actor,
                action: "company.set",
                target: company.as_str(),
                request_id: None,
                details: json!({
                    "name": name.is_some(),
                    "settings": settings.map(|s| setting_names(&s.to_json())),
                }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_settings_of_the_right_types_are_accepted() {
        let settings = Settings::from_json(&json!({
            "reminder_offsets_hours": [0, 24, 72],
            "reminder_channel": "email",
            "recovery_url": "https://acme.example/billing",
            "ab_allocation": "thompson",
            "retention_days": 30,
            "payload_retention_days": 14
        }))
        .unwrap();
        assert_eq!(settings.reminder_offsets_hours, Some(vec![0, 24, 72]));
        assert_eq!(
            Settings::from_json(&json!({})).unwrap(),
            Settings::default()
        );
        assert_eq!(Settings::from_json(&settings.to_json()).unwrap(), settings);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        for (bad, field) in [
            (json!([1, 2]), "settings"),
            (json!("x"), "settings"),
            (
                json!({"reminder_offset_hours": [0]}),
                "reminder_offset_hours",
            ),
            (
                json!({"reminder_offsets_hours": "0,24"}),
                "reminder_offsets_hours",
            ),
            (
                json!({"reminder_offsets_hours": [24, 0]}),
                "reminder_offsets_hours",
            ),
            (
                json!({"reminder_offsets_hours": [-1]}),
                "reminder_offsets_hours",
            ),
            (
                json!({"reminder_offsets_hours": []}),
                "reminder_offsets_hours",
            ),
            (json!({"reminder_channel": "sms"}), "reminder_channel"),
            (json!({"reminder_channel": 1}), "reminder_channel"),
            (json!({"recovery_url": "ftp://x"}), "recovery_url"),
            (json!({"recovery_url": "https://a b"}), "recovery_url"),
            (json!({"ab_allocation": "random"}), "ab_allocation"),
            (json!({"retention_days": 3}), "retention_days"),
            (json!({"retention_days": "90"}), "retention_days"),
            (json!({"retention_days": -5}), "retention_days"),
            (
                json!({"payload_retention_days": 0}),
                "payload_retention_days",
            ),
            (
                json!({"retention_days": 10, "payload_retention_days": 11}),
                "payload_retention_days",
            ),
        ] {
            let error = Settings::from_json(&bad).unwrap_err();
            assert_eq!(error.field, field, "{bad}: {error}");
        }
    }

    #[test]
    fn merging_sets_given_keys_and_null_restores_the_default() {
        let current =
            Settings::from_json(&json!({"reminder_channel": "email", "retention_days": 30}))
                .unwrap();
        let merged = current
            .merged(&json!({"reminder_channel": null, "recovery_url": "https://x.example"}))
            .unwrap();
        assert_eq!(merged.reminder_channel, None);
        assert_eq!(merged.retention_days, Some(30));
        assert_eq!(merged.recovery_url.as_deref(), Some("https://x.example"));
        assert_eq!(
            current.merged(&json!({"colour": null})).unwrap_err().field,
            "colour"
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Acme Inc  "), Ok("Acme Inc"));
        for bad in ["", "   ", "a\nb", &"x".repeat(201)] {
            assert_eq!(check_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
    }
}
