use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// How long a connection attempt may take before it is reported as unreachable.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a database connection could not be made. The message names the server but never the
/// password, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the database URL is not valid ({0}); expected postgres://USER@HOST:PORT/DBNAME")]
    InvalidUrl(String),
    #[error(
        "cannot reach Postgres at {target} ({cause}); start the local services with \
         `make services` (or check the database URL)"
    )]
    Unreachable {
        target: String,
        cause: tokio_postgres::Error,
    },
}

/// Opens one connection and drives it on a background task.
///
/// The URL's `connect_timeout` is honoured; without one, attempts give up after 5 s so that
/// nothing waits forever on a server that is not there.
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    connect_with(url, None).await
}

/// [`connect`], with every statement of the session limited to `statement_timeout`.
pub async fn connect_with(
    url: &str,
    statement_timeout: Option<Duration>,
) -> Result<Client, ConnectError> {
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnectError::InvalidUrl(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("inlet");
    }
    if let Some(timeout) = statement_timeout {
        config.options(format!("-c statement_timeout={}", timeout.as_millis()));
    }
    let target = describe(&config);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|cause| ConnectError::Unreachable { target, cause })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection closed");
        }
    });
    Ok(client)
}

/// `user@host:port/db`, for messages: never the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_of_a_url_never_contains_its_password() {
        let config: Config = "postgres://app:s3cret@db.internal:6543/inlet"
            .parse()
            .unwrap();
        let text = describe(&config);
        assert_eq!(text, "app@db.internal:6543/inlet");
        assert!(!text.contains("s3cret"));
    }

    #[tokio::test]
    async fn unreachable_server_is_reported_quickly_with_a_fix() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let started = std::time::Instant::now();
        let err = connect("postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=2")
            .await
            .expect_err("connection to a closed port must fail");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(text.contains("make services"), "{text}");
        assert!(!text.contains("pw"), "{text}");
    }

    #[tokio::test]
    async fn malformed_url_is_a_clear_error() {
        let err = connect("postgres://a@b:notaport/x")
            .await
            .expect_err("bad port");
        assert!(matches!(err, ConnectError::InvalidUrl(_)), "{err}");
    }
}
