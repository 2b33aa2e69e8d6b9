//! HTTP answers for API Gateway (HTTP API, payload v2): JSON or problem+json bodies.

use lambda_http::{Body, Response};

use inlet_webhooks::intake::IntakeResponse;

/// An intake-shaped answer as an API Gateway response; never fails (a 500 at worst).
pub fn to_http(response: IntakeResponse) -> Response<Body> {
    let mut builder = Response::builder()
        .status(response.status)
        .header("content-type", response.content_type)
        .header("cache-control", "no-store");
    if let Some(seconds) = response.retry_after {
        builder = builder.header("retry-after", seconds);
    }
    builder.body(Body::Text(response.body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Empty);
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// A problem+json answer with a stable code.
pub fn problem(status: u16, code: &'static str, title: &str) -> Response<Body> {
    to_http(IntakeResponse::problem(status, code, title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_status_content_type_and_retry_after() {
        let response =
            to_http(IntakeResponse::problem(429, "rate_limited", "x").with_retry_after(7));
        assert_eq!(response.status(), 429);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "7");
    }
}
