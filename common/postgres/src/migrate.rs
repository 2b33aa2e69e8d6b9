//! Forward-only, checksummed migrations.
//!
//! Files are `migrations/NNN_name.sql`. Each one is applied in its own transaction and recorded
//! in `schema_migrations` with the SHA-256 of its bytes. An applied migration whose file has
//! changed, disappeared, or been numbered below the newest applied one is refused: the fix is
//! always a new migration. A session-level advisory lock serialises concurrent runners.
//!
//! Why not refinery: it records a SipHash of name and text and cannot tell you the SHA-256 the
//! deploy pipeline and reviewers compare; the runner here is small and does exactly that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

/// Arbitrary constant: the advisory lock key that serialises migration runners.
const LOCK_KEY: i64 = 0x1e7_5c4e_3a00;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    /// File name, e.g. `001_tenancy.sql`.
    pub name: String,
    pub sql: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read migrations from {dir}: {cause}")]
    ReadDir { dir: PathBuf, cause: std::io::Error },
    #[error("{file} is not a migration name: expected NNN_name.sql (digits, underscore, [a-z0-9_] name)")]
    BadName { file: String },
    #[error("{first} and {second} have the same version number; renumber the newer one")]
    DuplicateVersion { first: String, second: String },
    #[error(
        "migration {name} was changed after it was applied (recorded sha256 {recorded}, file sha256 \
         {current}); migrations are forward-only: restore the file and add a new migration"
    )]
    Changed {
        name: String,
        recorded: String,
        current: String,
    },
    #[error(
        "migration {name} (version {version}) is applied in the database but missing from the \
         migrations directory; restore the file"
    )]
    Missing { version: i32, name: String },
    #[error(
        "migration {name} is numbered below the newest applied migration ({newest}); migrations are \
         forward-only: give it a number above {newest}"
    )]
    OutOfOrder { name: String, newest: String },
    #[error("migration {name} failed: {}", db_error_text(.cause))]
    Apply {
        name: String,
        cause: tokio_postgres::Error,
    },
    #[error(
        "cannot record the verification ({findings} difference(s) found) in migration_verifications: {}; run `inlet migrate` first",
        db_error_text(.cause)
    )]
    Record {
        cause: tokio_postgres::Error,
        findings: usize,
    },
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// The server's message (`relation "x" does not exist`), not just "db error".
fn db_error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    }
}

/// What `apply` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<String>,
    pub already_applied: usize,
}

/// Reads every `NNN_name.sql` in `dir`, ordered by version.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let read_err = |cause| MigrateError::ReadDir {
        dir: dir.to_owned(),
        cause,
    };
    let mut by_version: BTreeMap<i32, Migration> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("sql") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let version =
            parse_version(&name).ok_or_else(|| MigrateError::BadName { file: name.clone() })?;
        let bytes = std::fs::read(&path).map_err(read_err)?;
        let sql = String::from_utf8(bytes.clone()).map_err(|_| MigrateError::BadName {
            file: format!("{name} (not UTF-8)"),
        })?;
        let migration = Migration {
            version,
            name: name.clone(),
            sql,
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        if let Some(other) = by_version.insert(version, migration) {
            let (first, second) = if other.name < name {
                (other.name, name)
            } else {
                (name, other.name)
            };
            return Err(MigrateError::DuplicateVersion { first, second });
        }
    }
    Ok(by_version.into_values().collect())
}

fn parse_version(file: &str) -> Option<i32> {
    let stem = file.strip_suffix(".sql")?;
    let (digits, rest) = stem.split_once('_')?;
    let valid_digits = digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit());
    let valid_rest = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid_digits && valid_rest {
        digits.parse().ok()
    } else {
        None
    }
}

/// Applies the migrations not yet recorded, after checking the recorded ones are unchanged.
pub async fn apply(client: &mut Client, migrations: &[Migration]) -> Result<Report, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_locked(client, migrations).await;
    // The lock is session-level; release it whatever happened.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let report = result?;
    unlock?;
    Ok(report)
}

async fn apply_locked(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Report, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let rows = client
        .query(
            "SELECT version, name, sha256 FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let applied: BTreeMap<i32, (String, String)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();

    let pending = pending(&applied, migrations)?;
    let mut report = Report {
        applied: Vec::new(),
        already_applied: applied.len(),
    };
    for migration in pending {
        let apply_err = |cause| MigrateError::Apply {
            name: migration.name.clone(),
            cause,
        };
        let tx = client.transaction().await?;
        tx.batch_execute(&migration.sql).await.map_err(apply_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &migration.sha256],
        )
        .await?;
        tx.commit().await.map_err(apply_err)?;
        tracing::info!(migration = %migration.name, sha256 = %migration.sha256, "applied migration");
        report.applied.push(migration.name.clone());
    }
    Ok(report)
}

/// What `inlet migrate verify` found: every way the repository's migrations and the database's
/// record differ (empty when they match), and how long the check took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: usize,
    pub findings: Vec<String>,
    pub duration_ms: i32,
}

impl Verification {
    pub fn matches(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Who ran a verification, recorded with it.
#[derive(Debug, Clone)]
pub struct VerifyContext<'a> {
    /// The repository's commit (hex), or `unknown`.
    pub commit_sha: &'a str,
    /// e.g. `local`, `staging`, `production`.
    pub environment: &'a str,
}

/// Compares every migration file (SHA-256 of its bytes) with `schema_migrations` and appends
/// the run to `migration_verifications` (append-only). A mismatch is a finding, not an error:
/// the caller decides the exit code; an error means the check could not run or be recorded.
pub async fn verify(
    client: &Client,
    migrations: &[Migration],
    context: &VerifyContext<'_>,
) -> Result<Verification, MigrateError> {
    let started = std::time::Instant::now();
    let recorded_table: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let applied: BTreeMap<i32, (String, String)> = if recorded_table {
        client
            .query("SELECT version, name, sha256 FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect()
    } else {
        BTreeMap::new()
    };
    let findings = differences(&applied, migrations);
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let result = if findings.is_empty() {
        "match"
    } else {
        "mismatch"
    };
    client
        .execute(
            "INSERT INTO migration_verifications (commit_sha, environment, result, duration_ms, findings) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &context.commit_sha,
                &context.environment,
                &result,
                &duration_ms,
                &findings,
            ],
        )
        .await
        .map_err(|cause| MigrateError::Record {
            cause,
            findings: findings.len(),
        })?;
    Ok(Verification {
        checked: migrations.len().max(applied.len()),
        findings,
        duration_ms,
    })
}

/// Every difference between the recorded migrations and the files, one sentence each.
fn differences(applied: &BTreeMap<i32, (String, String)>, migrations: &[Migration]) -> Vec<String> {
    let files: BTreeMap<i32, &Migration> = migrations.iter().map(|m| (m.version, m)).collect();
    let mut findings = Vec::new();
    for (version, (name, recorded)) in applied {
        match files.get(version) {
            None => findings.push(format!(
                "{name}: applied, but no such file in the repository"
            )),
            Some(file) if &file.sha256 != recorded => findings.push(format!(
                "{}: changed since it was applied (recorded sha256 {recorded}, file sha256 {})",
                file.name, file.sha256
            )),
            Some(file) if &file.name != name => findings.push(format!(
                "{}: applied as {name} (renamed; same contents)",
                file.name
            )),
            Some(_) => {}
        }
    }
    for migration in migrations {
        if !applied.contains_key(&migration.version) {
            findings.push(format!("{}: not applied to this database", migration.name));
        }
    }
    findings
}

/// The migrations still to apply, or why the recorded history and the files disagree.
fn pending<'m>(
    applied: &BTreeMap<i32, (String, String)>,
    migrations: &'m [Migration],
) -> Result<Vec<&'m Migration>, MigrateError> {
    let files: BTreeMap<i32, &Migration> = migrations.iter().map(|m| (m.version, m)).collect();
    for (version, (name, recorded)) in applied {
        match files.get(version) {
            None => {
                return Err(MigrateError::Missing {
                    version: *version,
                    name: name.clone(),
                })
            }
            Some(file) if &file.sha256 != recorded => {
                return Err(MigrateError::Changed {
                    name: file.name.clone(),
                    recorded: recorded.clone(),
                    current: file.sha256.clone(),
                })
            }
            Some(_) => {}
        }
    }
    let newest = applied.last_key_value();
    let mut todo = Vec::new();
    for migration in migrations {
        if applied.contains_key(&migration.version) {
            continue;
        }
        if let Some((newest_version, (newest_name, _))) = newest {
            if migration.version < *newest_version {
                return Err(MigrateError::OutOfOrder {
                    name: migration.name.clone(),
                    newest: newest_name.clone(),
                });
            }
        }
        todo.push(migration);
    }
    Ok(todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn migration_names_need_a_number_and_a_lower_case_name() {
        assert_eq!(parse_version("001_init.sql"), Some(1));
        assert_eq!(parse_version("120_add_ab_tests.sql"), Some(120));
        for bad in [
            "1_init.sql",
            "001-init.sql",
            "001_.sql",
            "001_Init.sql",
            "abc_init.sql",
            "001_init",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn loading_orders_by_version_and_hashes_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "010_b.sql", "select 2;");
        write(dir.path(), "002_a.sql", "abc");
        write(dir.path(), "README.md", "not a migration");
        let loaded = load_dir(dir.path()).unwrap();
        let names: Vec<_> = loaded.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["002_a.sql", "010_b.sql"]);
        // FIPS 180-2 test vector: SHA-256("abc").
        assert_eq!(
            loaded[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_badly_named_sql_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "init.sql", "select 1;");
        let err = load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("init.sql"), "{err}");
    }

    #[test]
    fn two_files_with_one_version_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "003_a.sql", "select 1;");
        write(dir.path(), "003_b.sql", "select 2;");
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(err, MigrateError::DuplicateVersion { .. }),
            "{err}"
        );
    }

    fn mig(version: i32, body: &str) -> Migration {
        Migration {
            version,
            name: format!("{version:03}_m.sql"),
            sql: body.to_owned(),
            sha256: hex::encode(Sha256::digest(body.as_bytes())),
        }
    }

    fn recorded(ms: &[&Migration]) -> BTreeMap<i32, (String, String)> {
        ms.iter()
            .map(|m| (m.version, (m.name.clone(), m.sha256.clone())))
            .collect()
    }

    #[test]
    fn only_unrecorded_migrations_are_pending() {
        let (a, b) = (mig(1, "a"), mig(2, "b"));
        let files = [a.clone(), b.clone()];
        let todo = pending(&recorded(&[&a]), &files).unwrap();
        assert_eq!(todo, [&b]);
    }

    #[test]
    fn a_changed_applied_migration_is_refused_with_its_name() {
        let a = mig(1, "a");
        let changed = Migration {
            sha256: hex::encode(Sha256::digest(b"a2")),
            ..a.clone()
        };
        let err = pending(&recorded(&[&a]), &[changed]).unwrap_err();
        assert!(err.to_string().contains("001_m.sql was changed"), "{err}");
    }

    #[test]
    fn a_missing_applied_migration_is_refused() {
        let (a, b) = (mig(1, "a"), mig(2, "b"));
        let err = pending(&recorded(&[&a, &b]), std::slice::from_ref(&a)).unwrap_err();
        assert!(
            matches!(err, MigrateError::Missing { version: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_new_migration_numbered_below_the_newest_applied_is_refused() {
        let (a, c, b) = (mig(1, "a"), mig(3, "c"), mig(2, "b"));
        let err = pending(&recorded(&[&a, &c]), &[a.clone(), b, c.clone()]).unwrap_err();
        assert!(matches!(err, MigrateError::OutOfOrder { .. }), "{err}");
    }

    #[test]
    fn verification_names_a_changed_a_missing_and_an_unapplied_migration() {
        let (a, b, c) = (mig(1, "a"), mig(2, "b"), mig(3, "c"));
        assert!(differences(&recorded(&[&a, &b]), &[a.clone(), b.clone()]).is_empty());
        let changed = Migration {
            sha256: hex::encode(Sha256::digest(b"b2")),
            ..b.clone()
        };
        let findings = differences(&recorded(&[&a, &b]), &[changed, c]);
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert!(
            findings[0].starts_with("001_m.sql: applied, but no such file"),
            "{findings:?}"
        );
        assert!(
            findings[1].starts_with("002_m.sql: changed since it was applied"),
            "{findings:?}"
        );
        assert!(
            findings[2].starts_with("003_m.sql: not applied"),
            "{findings:?}"
        );
    }
}
