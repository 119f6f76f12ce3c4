//! When a failed attempt is tried again, and after how long. Pure.
//!
//! A retry is a new attempt, recorded on its own (same probe, `retry` + 1), so availability
//! counts every refusal. Transient refusals are retried: rate limited (429), overloaded (529),
//! server errors (5xx), connect failures and timeouts before headers. Never retried: quota or
//! billing (retrying cannot help and costs money), auth, unknown model, bad request, and every
//! answer that arrived (cut at max_tokens, filtered, empty, malformed, truncated, error event
//! after 200: the provider answered, the answer is the observation).
//!
//! Delay: the provider's Retry-After is a minimum; otherwise exponential backoff from
//! `base_ms` (base, 2 x base, 4 x base, ...).

use sit_core::observation::{Failure, FailureClass};
use std::time::Duration;

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_retries: u32,
    pub base_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_retries: 2,
            base_ms: 500,
        }
    }
}

/// Whether this failure class is worth another attempt.
pub fn retryable(class: FailureClass) -> bool {
    matches!(
        class,
        FailureClass::RateLimited
            | FailureClass::Overloaded
            | FailureClass::ServerError
            | FailureClass::Connect
            | FailureClass::ConnectionClosed
            | FailureClass::TimeoutHeaders
    )
}

/// The wait before retry number `retry + 1` after `failure`, or None when not to retry.
pub fn delay(p: &Policy, failure: Option<&Failure>, retry: u32) -> Option<Duration> {
    let f = failure?;
    if !retryable(f.class) || retry >= p.max_retries {
        return None;
    }
    let backoff = p.base_ms.saturating_mul(1 << retry.min(16));
    Some(Duration::from_millis(
        backoff.max(f.retry_after_ms.unwrap_or(0)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(class: FailureClass, retry_after_ms: Option<u64>) -> Failure {
        Failure {
            class,
            detail: String::new(),
            retry_after_ms,
        }
    }

    #[test]
    fn retry_after_is_a_minimum_and_backoff_doubles() {
        let p = Policy::default();
        let rl = f(FailureClass::RateLimited, Some(1000));
        assert_eq!(delay(&p, Some(&rl), 0), Some(Duration::from_millis(1000)));
        assert_eq!(
            delay(&p, Some(&f(FailureClass::RateLimited, Some(100))), 1),
            Some(Duration::from_millis(1000)),
            "backoff 2 x 500 ms beats a shorter Retry-After"
        );
        assert_eq!(
            delay(&p, Some(&f(FailureClass::ServerError, None)), 0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(delay(&p, Some(&rl), 2), None, "at most max_retries");
    }

    #[test]
    fn quota_auth_and_answers_are_never_retried() {
        let p = Policy::default();
        for c in [
            FailureClass::Quota,
            FailureClass::Auth,
            FailureClass::ModelNotFound,
            FailureClass::BadRequest,
            FailureClass::FinishLength,
            FailureClass::Truncated,
            FailureClass::ErrorEvent,
            FailureClass::Malformed,
        ] {
            assert_eq!(delay(&p, Some(&f(c, Some(10))), 0), None, "{c:?}");
        }
        assert_eq!(delay(&p, None, 0), None, "success");
    }
}
