//! The `track-click` function's wiring: `GET /r/{token}` counts one click per reminder and
//! answers 302 to the company's recovery URL; anything bad is a plain 404.
//! `functions/track-click` calls [`run`].

use lambda_http::{service_fn, Body, Request, RequestExt, Response};

use inlet_core::clock::now_secs;
use inlet_core::config::{self, Env, ProcessEnv, SettingsError};
use inlet_core::crypto::KeyRing;
use inlet_domain::reminders::clicks::{read, record};
use inlet_postgres::{Database, DbSettings};
use inlet_webhooks::intake::IntakeResponse;

use crate::http::{problem, to_http};
use crate::telemetry::{self, LogFormat};

pub use lambda_http::Error;

fn not_found() -> Response<Body> {
    problem(404, "not_found", "Not found")
}

fn unavailable() -> Response<Body> {
    to_http(IntakeResponse::problem(503, "unavailable", "Try again shortly").with_retry_after(5))
}

pub struct ClickSettings {
    pub database: DbSettings,
    pub keys: KeyRing,
}

impl ClickSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database: DbSettings::new(config::required(env, "DATABASE_URL")?),
            keys: config::key_ring(env)?,
        })
    }
}

/// One `GET /r/{token}`.
pub async fn handle(database: &Database, keys: &KeyRing, request: Request) -> Response<Body> {
    let token = request
        .path_parameters_ref()
        .and_then(|p| p.first("token"))
        .and_then(|t| read(keys, t, now_secs()));
    let Some(token) = token else {
        return not_found();
    };
    let mut connection = match database.client().await {
        Ok(connection) => connection,
        Err(error) => {
            tracing::error!(%error, "database unavailable");
            return unavailable();
        }
    };
    match record(&mut connection, &token).await {
        Ok(Some(url)) => {
            tracing::info!(reminder_id = token.reminder_id, company_id = %token.company_id, "reminder link followed");
            Response::builder()
                .status(302)
                .header("location", url)
                .header("cache-control", "no-store")
                .body(Body::Empty)
                .unwrap_or_else(|_| not_found())
        }
        Ok(None) => not_found(),
        Err(failure) => {
            tracing::error!(?failure, "recording a click failed");
            unavailable()
        }
    }
}

/// The whole of `track-click`'s `main`.
pub async fn run() -> Result<(), Error> {
    telemetry::init(LogFormat::Json);
    let settings = ClickSettings::from_env(&ProcessEnv).inspect_err(|error| {
        tracing::error!(%error, "invalid configuration; the function cannot start");
    })?;
    let database = Database::new(settings.database);
    let (database, keys) = (&database, &settings.keys);
    lambda_http::run(service_fn(move |request: Request| async move {
        let started = std::time::Instant::now();
        let response = handle(database, keys, request).await;
        crate::metrics::emit_invocation(
            &crate::metrics::Stdout,
            "track-click",
            &crate::metrics::answered(started.elapsed(), response.status().as_u16()),
        );
        Ok::<_, Error>(response)
    }))
    .await
}
