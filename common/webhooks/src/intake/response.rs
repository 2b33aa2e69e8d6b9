//! What intake answers: JSON on success, RFC 9457 problem+json with a stable `code` otherwise.

use serde_json::json;

/// `{"status":...,"event_id":...}`.
#[derive(serde::Serialize)]
struct Outcome<'a> {
    status: &'static str,
    event_id: &'a str,
}

impl Outcome<'_> {
    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Seconds, for 429 / 409 / 503.
    pub retry_after: Option<u64>,
    /// The stable code of a problem, for logs and metrics (None on success).
    pub code: Option<&'static str>,
    /// What the answer was, as a metric dimension: the problem's code, or `accepted`,
    /// `duplicate`, `challenge`.
    pub label: &'static str,
}

impl IntakeResponse {
    pub fn accepted(event_id: &str) -> Self {
        Self::ok(
            202,
            "accepted",
            Outcome {
                status: "accepted",
                event_id,
            }
            .to_json(),
        )
    }

    pub fn duplicate(event_id: &str) -> Self {
        Self::ok(
            200,
            "duplicate",
            Outcome {
                status: "duplicate",
                event_id,
            }
            .to_json(),
        )
    }

    /// Slack's url_verification answer.
    pub fn challenge(challenge: &str) -> Self {
        Self::ok(
            200,
            "challenge",
            json!({"challenge": challenge}).to_string(),
        )
    }

    fn ok(status: u16, label: &'static str, body: String) -> Self {
        Self {
            status,
            content_type: "application/json",
            body,
            retry_after: None,
            code: None,
            label,
        }
    }

    /// A problem document. `detail` must never carry a secret, a signature or a body.
    pub fn problem(status: u16, code: &'static str, title: &str) -> Self {
        let body = json!({
            "type": format!("urn:inlet:problem:{code}"),
            "title": title,
            "status": status,
            "code": code,
        });
        Self {
            status,
            content_type: "application/problem+json",
            body: body.to_string(),
            retry_after: None,
            code: Some(code),
            label: code,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
}
