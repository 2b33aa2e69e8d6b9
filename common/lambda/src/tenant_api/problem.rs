//! The tenant API's errors: RFC 9457 problem documents with a stable `code`. A detail names
//! what was wrong with the request, never a secret, a key or another tenant's data.

use lambda_http::{Body, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem: what [`ProblemDocument`] carries, and the headers that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// Stable, machine-readable: see docs/TENANT_API.md.
    pub code: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub retry_after: Option<u64>,
    /// For 405: the method the path takes.
    pub allow: Option<&'static str>,
}

/// A problem document (`application/problem+json`, RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDocument<'a> {
    /// `urn:inlet:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    /// Stable, machine-readable: see docs/TENANT_API.md.
    pub code: &'a str,
    pub detail: &'a str,
}

impl Problem {
    pub fn new(status: u16, code: &'static str, title: &'static str, detail: &str) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.to_owned(),
            retry_after: None,
            allow: None,
        }
    }

    pub fn bad_query(detail: &str) -> Self {
        Self::new(400, "invalid_query", "Invalid query parameter", detail)
    }

    pub fn bad_body(detail: &str) -> Self {
        Self::new(400, "invalid_body", "Invalid request body", detail)
    }

    pub fn not_found() -> Self {
        Self::new(404, "not_found", "Not found", "no such resource")
    }

    pub fn unavailable() -> Self {
        let mut problem = Self::new(
            503,
            "unavailable",
            "Temporarily unavailable",
            "try again shortly",
        );
        problem.retry_after = Some(5);
        problem
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&ProblemDocument {
            kind: format!("urn:inlet:problem:{}", self.code),
            title: self.title,
            status: self.status,
            code: self.code,
            detail: &self.detail,
        })
        .unwrap_or_default();
        let mut builder = Response::builder()
            .status(self.status)
            .header("content-type", "application/problem+json")
            .header("cache-control", "no-store");
        if let Some(seconds) = self.retry_after {
            builder = builder.header("retry-after", seconds);
        }
        if let Some(allow) = self.allow {
            builder = builder.header("allow", allow);
        }
        if self.status == 401 {
            builder = builder.header("www-authenticate", "Bearer realm=\"inlet\"");
        }
        builder
            .body(Body::Text(body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
}

impl From<inlet_core::Failure> for Problem {
    fn from(failure: inlet_core::Failure) -> Self {
        tracing::error!(?failure, "tenant API request failed");
        Problem::unavailable()
    }
}

impl From<inlet_postgres::DbError> for Problem {
    fn from(error: inlet_postgres::DbError) -> Self {
        Problem::from(inlet_core::Failure::from(error))
    }
}
