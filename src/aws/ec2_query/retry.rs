//! When a failed EC2 call is tried again, and after how long: the SDK's standard retry mode
//! (up to three attempts, exponential back-off with full jitter from 1 s, capped at 20 s),
//! with its lists of throttling and transient errors. Pure: the answer in, a verdict out.

use std::time::Duration;

/// Attempts of one call unless the configuration says otherwise (`AWS_MAX_ATTEMPTS`).
pub(crate) const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The first back-off's upper bound.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// No back-off is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Error codes that mean "slow down" (the SDK's throttling list).
const THROTTLING_CODES: [&str; 14] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];
/// Error codes of a fault that passes (the SDK's transient list).
const TRANSIENT_CODES: [&str; 3] = ["RequestTimeout", "RequestTimeoutException", "InternalError"];
/// HTTP statuses of a fault that passes.
const TRANSIENT_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// What one attempt's outcome asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Final: success, or an error that another attempt would repeat.
    Final,
    /// Try again after a back-off.
    Retry,
}

/// The verdict on an answer with `status` and, for an error, its `code`.
pub(crate) fn on_answer(status: u16, code: Option<&str>) -> Verdict {
    if (200..300).contains(&status) {
        return Verdict::Final;
    }
    let listed = code.is_some_and(|c| THROTTLING_CODES.contains(&c) || TRANSIENT_CODES.contains(&c));
    if listed || TRANSIENT_STATUSES.contains(&status) || status == 429 { Verdict::Retry } else { Verdict::Final }
}

/// How long to wait after failed attempt number `attempt` (1 for the first), given a `jitter`
/// drawn uniformly from [0, 1).
pub(crate) fn backoff(attempt: u32, jitter: f64) -> Duration {
    let ceiling = INITIAL_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_passing_faults_are_retried_and_nothing_else() {
        assert_eq!(on_answer(200, None), Verdict::Final);
        assert_eq!(on_answer(503, Some("RequestLimitExceeded")), Verdict::Retry);
        assert_eq!(on_answer(400, Some("RequestLimitExceeded")), Verdict::Retry);
        assert_eq!(on_answer(500, Some("InternalError")), Verdict::Retry);
        assert_eq!(on_answer(502, None), Verdict::Retry);
        assert_eq!(on_answer(429, None), Verdict::Retry);
        assert_eq!(on_answer(403, Some("UnauthorizedOperation")), Verdict::Final);
        assert_eq!(on_answer(400, Some("InvalidInstanceID.NotFound")), Verdict::Final);
        assert_eq!(on_answer(401, Some("AuthFailure")), Verdict::Final);
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_twenty() {
        assert_eq!(backoff(1, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(9, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(40, 0.5), MAX_BACKOFF / 2);
        assert_eq!(backoff(1, 0.0), Duration::ZERO);
    }
}
