//! The one table from AWS error codes to what they mean for the user, used by the words in
//! `error.rs` and by `doctor` alike (issue 15: they used to keep two tables that disagreed).

use super::AwsError;
use super::credentials::SsoError;

/// What an AWS error means, whatever service said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The identity may not make this call (IAM).
    Denied,
    /// The credentials are not valid: unknown key, wrong secret or signature.
    BadCredentials,
    /// The request's time is too far from AWS's: the system clock is off.
    ClockSkew,
    /// Session credentials that have expired.
    Expired,
    /// The account is being throttled.
    Throttled,
    /// What the call names does not exist.
    NotFound,
    /// No credentials at all.
    NoCredentials,
    /// No answer from the endpoint (network, name lookup, TLS, timeout), or not an AWS answer.
    Unreachable,
    /// Anything else (a bad Region, an MFA refusal, a code this table does not know).
    Other,
}

/// Error codes by kind. Sources: the EC2 API reference's "Common client error codes", the IAM
/// and STS references, and the JSON services' common errors (`aws-apis.md`).
const CODES: &[(&str, ErrorKind)] = &[
    ("UnauthorizedOperation", ErrorKind::Denied),
    ("AccessDenied", ErrorKind::Denied),
    ("AccessDeniedException", ErrorKind::Denied),
    ("UnauthorizedException", ErrorKind::Denied),
    // EC2 Instance Connect's model names its denial AuthException (aws-apis.md §2.1).
    ("AuthException", ErrorKind::Denied),
    // EC2: "The provided credentials could not be validated": an unknown key or a bad signature.
    ("AuthFailure", ErrorKind::BadCredentials),
    ("InvalidClientTokenId", ErrorKind::BadCredentials),
    ("UnrecognizedClientException", ErrorKind::BadCredentials),
    ("SignatureDoesNotMatch", ErrorKind::BadCredentials),
    ("InvalidSignatureException", ErrorKind::BadCredentials),
    ("IncompleteSignature", ErrorKind::BadCredentials),
    ("MissingAuthenticationToken", ErrorKind::BadCredentials),
    // EC2: the request's date is more than 15 minutes off AWS's clock.
    ("RequestExpired", ErrorKind::ClockSkew),
    ("RequestTimeTooSkewed", ErrorKind::ClockSkew),
    ("ExpiredToken", ErrorKind::Expired),
    ("ExpiredTokenException", ErrorKind::Expired),
    ("RequestLimitExceeded", ErrorKind::Throttled),
    ("Throttling", ErrorKind::Throttled),
    ("ThrottlingException", ErrorKind::Throttled),
    ("TooManyRequestsException", ErrorKind::Throttled),
    ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
    ("InvalidInstanceId", ErrorKind::NotFound),
    ("DoesNotExistException", ErrorKind::NotFound),
    ("InvalidInstanceConnectEndpointId.NotFound", ErrorKind::NotFound),
    ("InvalidKeyPair.NotFound", ErrorKind::NotFound),
];

/// The kind of an AWS error code (`Other` for codes the table does not know).
pub(crate) fn kind_of_code(code: &str) -> ErrorKind {
    CODES.iter().find(|(c, _)| *c == code).map_or(ErrorKind::Other, |(_, k)| *k)
}

impl AwsError {
    /// What this error means for the user (see [`ErrorKind`]).
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            AwsError::Service { code, .. } => kind_of_code(code),
            AwsError::NoCredentials { .. } => ErrorKind::NoCredentials,
            AwsError::Unreachable { .. } | AwsError::Unreadable { .. } | AwsError::Transport { .. } => {
                ErrorKind::Unreachable
            }
            AwsError::Sso(sso) => match sso.as_ref() {
                SsoError::SignInNeeded { .. } => ErrorKind::NoCredentials,
                SsoError::NoAccess { .. } => ErrorKind::Denied,
                SsoError::Portal { source, .. } => source.kind(),
            },
            AwsError::NoRegion | AwsError::BadRegion { .. } | AwsError::Mfa(_) => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_kind() {
        assert_eq!(kind_of_code("AuthFailure"), ErrorKind::BadCredentials, "not a permission problem");
        assert_eq!(kind_of_code("RequestExpired"), ErrorKind::ClockSkew, "EC2's clock-skew error");
        assert_eq!(kind_of_code("AuthException"), ErrorKind::Denied);
        assert_eq!(kind_of_code("ExpiredTokenException"), ErrorKind::Expired);
        assert_eq!(kind_of_code("SomethingNew"), ErrorKind::Other);
        let codes: Vec<&str> = CODES.iter().map(|(c, _)| *c).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len(), "each code once");
    }
}
