//! Retry policy: exponential backoff with full jitter.

use std::time::Duration;

/// How the client retries a call that failed with a retryable error.
///
/// The n-th retry (n = 0, 1, ...) sleeps a uniformly random time in
/// `[0, min(max_interval, initial_interval * multiplier^n)]` ("full jitter"). A call stops after
/// `max_attempts` attempts in total (1 = no retry) or when `deadline` (measured from the start of
/// the call, including every attempt and sleep) has passed, whichever comes first.
///
/// Only retryable errors ([`crate::ErrorKind::retryable`]) are retried, and a call that is not
/// idempotent only when the failed attempt certainly never reached the server. Calls the server
/// recognises when repeated (lock acquisition by request id, appends by event ids) are
/// idempotent and are also retried after [`crate::ErrorKind::OutcomeUnknown`]. A call that is
/// not idempotent and may have reached the server (an administrative force-release naming only
/// a key) fails with [`crate::ErrorKind::OutcomeUnknown`] instead of being repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Upper bound of the first backoff.
    pub initial_interval: Duration,
    /// Growth factor of the backoff bound per retry (at least 1).
    pub multiplier: f64,
    /// Largest backoff bound.
    pub max_interval: Duration,
    /// Attempts in total, including the first; 1 disables retries, 0 is treated as 1.
    pub max_attempts: u32,
    /// Time budget of a whole call, retries included; `None` = only `max_attempts` limits it.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 50 ms initial, ×2, at most 2 s between attempts, 10 attempts, 30 s overall.
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(50),
            multiplier: 2.0,
            max_interval: Duration::from_secs(2),
            max_attempts: 10,
            deadline: Some(Duration::from_secs(30)),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The upper bound of the backoff before retry number `retry` (0-based).
    pub fn backoff_bound(&self, retry: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() && self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let bound = self.initial_interval.as_secs_f64() * multiplier.powi(exponent);
        let max = self.max_interval.as_secs_f64();
        if !bound.is_finite() || bound >= max {
            self.max_interval
        } else {
            Duration::from_secs_f64(bound.max(0.0))
        }
    }

    /// A random backoff before retry number `retry` (full jitter).
    pub fn backoff(&self, retry: u32) -> Duration {
        self.backoff_bound(retry).mul_f64(fastrand::f64())
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_grows_and_caps() {
        let policy = RetryPolicy {
            initial_interval: Duration::from_millis(100),
            multiplier: 2.0,
            max_interval: Duration::from_millis(700),
            max_attempts: 5,
            deadline: None,
        };
        assert_eq!(policy.backoff_bound(0), Duration::from_millis(100));
        assert_eq!(policy.backoff_bound(1), Duration::from_millis(200));
        assert_eq!(policy.backoff_bound(2), Duration::from_millis(400));
        assert_eq!(policy.backoff_bound(3), Duration::from_millis(700));
        assert_eq!(policy.backoff_bound(u32::MAX), Duration::from_millis(700));
        for retry in 0..20 {
            assert!(policy.backoff(retry) <= policy.backoff_bound(retry));
        }
    }

    #[test]
    fn silly_multipliers_do_not_panic() {
        for multiplier in [f64::NAN, -1.0, 0.5, f64::INFINITY] {
            let policy = RetryPolicy {
                multiplier,
                ..RetryPolicy::default()
            };
            assert!(policy.backoff_bound(50) <= policy.max_interval);
        }
        assert_eq!(RetryPolicy::no_retry().attempts(), 1);
    }
}
