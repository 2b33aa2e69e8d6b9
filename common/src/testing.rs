//! Helpers for integration tests: a throwaway, migrated database per test on the local server
//! that `make test` starts (see `infra/scripts/services.sh`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::Client;

use crate::db::{self, migrate};

/// Reads a variable the local-services env file (`.local/env`) provides.
///
/// Panics with the fix when it is missing: integration tests run against real services and
/// must not silently pass without them.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: integration tests need the local services. Run `make test`, \
             or `make services && . .local/env` before `cargo nextest run`"
        )
    })
}

/// The repository's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("migrations")
}

/// Replaces the database name in a `postgres://user@host:port/db?params` URL.
pub fn with_dbname(url: &str, dbname: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let query = path.split_once('?').map(|(_, q)| q);
    match query {
        Some(q) => format!("{scheme}://{authority}/{dbname}?{q}"),
        None => format!("{scheme}://{authority}/{dbname}"),
    }
}

/// A fresh database with every migration applied. The local cluster is throwaway
/// (`make reset` removes it); `make test` drops leftovers from earlier runs first.
pub struct TestDb {
    pub name: String,
    /// Owner / migrator connection URL (superuser locally).
    pub admin_url: String,
    /// The application role's connection URL: what functions connect as.
    pub app_url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// Creates and migrates a new database.
    pub async fn create() -> TestDb {
        let db = Self::create_empty().await;
        let mut admin = db.admin().await;
        let migrations = migrate::load_dir(&migrations_dir()).expect("migrations load");
        migrate::apply(&mut admin, &migrations)
            .await
            .expect("migrations apply");
        db
    }

    /// Creates a new database with nothing in it.
    pub async fn create_empty() -> TestDb {
        let admin_url = required_env("DATABASE_ADMIN_URL");
        let app_url = required_env("DATABASE_URL");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "inlet_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let server = db::connect(&admin_url).await.expect("admin connection");
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        TestDb {
            admin_url: with_dbname(&admin_url, &name),
            app_url: with_dbname(&app_url, &name),
            name,
        }
    }

    /// A connection as the owner (bypasses RLS locally: superuser). For fixtures only.
    pub async fn admin(&self) -> Client {
        db::connect(&self.admin_url)
            .await
            .expect("admin connection")
    }

    /// A connection as the application role, as every function connects.
    pub async fn app(&self) -> Client {
        db::connect(&self.app_url).await.expect("app connection")
    }
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn dbname_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_dbname("postgres://a@127.0.0.1:5/x?connect_timeout=2", "y"),
            "postgres://a@127.0.0.1:5/y?connect_timeout=2"
        );
        assert_eq!(with_dbname("postgres://a@h:5/x", "y"), "postgres://a@h:5/y");
        assert_eq!(with_dbname("postgres://a@h:5", "y"), "postgres://a@h:5/y");
    }
}
