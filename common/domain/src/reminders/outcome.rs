//! What a delivery attempt means: the status -> outcome table, as one pure function over the
//! typed answer (no string matching), so every row of it is a unit test.

use inlet_core::{DeadLetterCode, Failure};

use crate::ports::{Answer, Delivery, DeliveryError};

/// The class a delivery attempt is logged with in `delivery_attempts.error_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    Permanent,
    Transient,
}

impl AttemptClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptClass::Permanent => "permanent",
            AttemptClass::Transient => "transient",
        }
    }
}

/// One attempt's verdict: the reminder's fate and how the attempt is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Ok("sent")`, or the failure the batch runner acts on.
    pub result: Result<&'static str, Failure>,
    pub class: Option<AttemptClass>,
}

/// Statuses that say "not now": retried with backoff (or after Retry-After).
fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429 | 500..=599)
}

/// Whether the endpoint looked unhealthy (for its circuit breaker): it timed out, could not be
/// reached, or answered a retryable status. `None` when the attempt says nothing about the
/// endpoint (it never left: a refused address, a rejected email).
pub fn endpoint_health(delivery: &Delivery) -> Option<bool> {
    match delivery.answer {
        Ok(Answer { status, .. }) => Some(!is_retryable(status)),
        Err(DeliveryError::Timeout | DeliveryError::Connection) => Some(false),
        Err(
            DeliveryError::PrivateAddress | DeliveryError::Rejected | DeliveryError::InvalidUrl,
        ) => None,
    }
}

/// The table: 2xx sent; 410 gone (endpoint disabled); 408/425/429/5xx and network trouble
/// retried until `max_attempts`, then given up; any other status refused; a rejected email or
/// a private address refused.
pub fn verdict(delivery: &Delivery, attempt: u32, max_attempts: u32) -> Verdict {
    let permanent = |code, reason: String| Verdict {
        result: Err(Failure::permanent(code, reason)),
        class: Some(AttemptClass::Permanent),
    };
    let retry = |reason: String, retry_after: Option<u32>| {
        let result = if attempt >= max_attempts {
            Err(Failure::permanent(
                DeadLetterCode::RetriesExhausted,
                format!("{reason}; gave up after {attempt} attempts"),
            ))
        } else {
            Err(match retry_after {
                Some(seconds) => Failure::RetryAfter { reason, seconds },
                None => Failure::Transient(reason),
            })
        };
        Verdict {
            result,
            class: Some(AttemptClass::Transient),
        }
    };
    match delivery.answer {
        Ok(Answer {
            status: 200..=299, ..
        }) => Verdict {
            result: Ok("sent"),
            class: None,
        },
        Ok(Answer { status: 410, .. }) => permanent(
            DeadLetterCode::EndpointGone,
            "the endpoint answered 410 Gone; disabled".into(),
        ),
        Ok(Answer {
            status,
            retry_after,
        }) if is_retryable(status) => retry(format!("the endpoint answered {status}"), retry_after),
        Ok(Answer { status, .. }) => permanent(
            DeadLetterCode::DeliveryRejected,
            format!("the endpoint answered {status}"),
        ),
        Err(error @ (DeliveryError::Timeout | DeliveryError::Connection)) => {
            retry(format!("delivery failed: {}", error.as_str()), None)
        }
        Err(DeliveryError::Rejected) => permanent(
            DeadLetterCode::DeliveryRejected,
            "the email was rejected".into(),
        ),
        Err(DeliveryError::PrivateAddress) => permanent(
            DeadLetterCode::DeliveryRejected,
            "private address refused".into(),
        ),
        Err(DeliveryError::InvalidUrl) => permanent(
            DeadLetterCode::DeliveryUnconfigured,
            "the endpoint URL is not a URL".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, retry_after: Option<u32>) -> Delivery {
        Delivery {
            answer: Ok(Answer {
                status,
                retry_after,
            }),
            latency_ms: 5,
        }
    }

    fn failed(error: DeliveryError) -> Delivery {
        Delivery {
            answer: Err(error),
            latency_ms: 5,
        }
    }

    fn code(verdict: &Verdict) -> Option<DeadLetterCode> {
        match &verdict.result {
            Err(Failure::Permanent(p)) => Some(p.code),
            _ => None,
        }
    }

    #[test]
    fn success_statuses_are_sent_and_log_no_error_class() {
        for status in [200, 202, 204, 299] {
            let v = verdict(&answered(status, None), 1, 5);
            assert_eq!(v.result, Ok("sent"));
            assert_eq!(v.class, None);
        }
    }

    #[test]
    fn gone_disables_and_dead_letters_at_once() {
        let v = verdict(&answered(410, None), 1, 5);
        assert_eq!(code(&v), Some(DeadLetterCode::EndpointGone));
        assert_eq!(v.class, Some(AttemptClass::Permanent));
    }

    #[test]
    fn retryable_statuses_and_network_trouble_retry_until_the_last_attempt() {
        for delivery in [
            answered(408, None),
            answered(425, None),
            answered(500, None),
            answered(503, None),
            failed(DeliveryError::Timeout),
            failed(DeliveryError::Connection),
        ] {
            let early = verdict(&delivery, 2, 5);
            assert!(
                matches!(early.result, Err(Failure::Transient(_))),
                "{delivery:?}"
            );
            assert_eq!(early.class, Some(AttemptClass::Transient));
            let last = verdict(&delivery, 5, 5);
            assert_eq!(code(&last), Some(DeadLetterCode::RetriesExhausted));
            assert!(last
                .result
                .unwrap_err()
                .reason()
                .contains("gave up after 5"));
        }
        assert_eq!(
            verdict(&answered(429, Some(30)), 1, 5).result,
            Err(Failure::RetryAfter {
                reason: "the endpoint answered 429".into(),
                seconds: 30
            })
        );
    }

    #[test]
    fn other_answers_are_refusals_for_good() {
        for status in [301, 400, 401, 404, 422] {
            let v = verdict(&answered(status, None), 1, 5);
            assert_eq!(code(&v), Some(DeadLetterCode::DeliveryRejected), "{status}");
        }
        assert_eq!(
            verdict(&failed(DeliveryError::Rejected), 1, 5).result,
            Err(Failure::permanent(
                DeadLetterCode::DeliveryRejected,
                "the email was rejected"
            ))
        );
        assert_eq!(
            verdict(&failed(DeliveryError::PrivateAddress), 1, 5).result,
            Err(Failure::permanent(
                DeadLetterCode::DeliveryRejected,
                "private address refused"
            ))
        );
    }

    #[test]
    fn only_what_the_endpoint_did_counts_for_its_circuit() {
        assert_eq!(endpoint_health(&answered(200, None)), Some(true));
        assert_eq!(endpoint_health(&answered(404, None)), Some(true));
        assert_eq!(endpoint_health(&answered(503, None)), Some(false));
        assert_eq!(
            endpoint_health(&failed(DeliveryError::Timeout)),
            Some(false)
        );
        assert_eq!(
            endpoint_health(&failed(DeliveryError::PrivateAddress)),
            None
        );
        assert_eq!(endpoint_health(&failed(DeliveryError::Rejected)), None);
    }
}
