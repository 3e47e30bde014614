//! The only place errors become words: `ec2-broker: error: <chain>` then an optional hint,
//! on stderr. Exit codes: 0 success, 1 failure, 2 usage (clap's own).
//!
//! Every text is scrubbed of the process's secrets ([`redact::scrub`]) and made printable line by
//! line ([`printable_lines`]) on its way out: the messages already clean what came from the
//! network where it enters, and this is the net under them.

use std::process::ExitCode;

use crate::aws::credentials::SsoError;
use crate::aws::{AwsError, ErrorKind};
use crate::redact;
use crate::text::printable_lines;

/// Prints `err` and its hint, if one applies; returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprint!("{}", render(err));
    ExitCode::from(1)
}

/// What [`report`] prints: the error line, then the hint line if one applies.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = format!("ec2-broker: error: {}\n", safe(&format!("{err:#}")));
    if let Some(hint) = hint(err) {
        out += &format!("  hint: {}\n", safe(&hint));
    }
    out
}

fn safe(text: &str) -> String {
    printable_lines(&redact::scrub(text)).into_owned()
}

/// A next step for errors from other people's code (AWS), recognised by walking the chain.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(aws) = cause.downcast_ref::<AwsError>() {
            return aws_hint(aws);
        }
    }
    None
}

fn aws_hint(err: &AwsError) -> Option<String> {
    match err {
        AwsError::Service { operation, .. } => match err.kind() {
            ErrorKind::Expired => {
                Some("your AWS credentials expired: refresh them (for SSO: aws sso login --profile NAME)".into())
            }
            ErrorKind::Denied => Some(format!(
                "the IAM identity in use may not call {operation}: check with aws sts get-caller-identity, and add the permission or pick another --profile"
            )),
            ErrorKind::BadCredentials => Some(
                "AWS does not accept these credentials (unknown access key, wrong secret, or a bad signature): check the access key, AWS_PROFILE or --profile, and that the system clock is right".into(),
            ),
            ErrorKind::ClockSkew => Some(
                "the request's time is more than 15 minutes off AWS's clock: set this machine's clock right (NTP)".into(),
            ),
            ErrorKind::Throttled => Some("AWS is throttling API calls from this account: wait a little and retry".into()),
            _ => None,
        },
        AwsError::NoCredentials { .. } => {
            Some("no usable AWS credentials: set AWS_PROFILE or pass --profile, or run aws configure / aws sso login".into())
        }
        AwsError::Unreachable { name_lookup: true, .. } => Some(
            "the endpoint's host name does not resolve: check that --region (or AWS_REGION, or the profile's region) names a Region that exists, and AWS_ENDPOINT_URL* if you set them".into(),
        ),
        // rustls names a refused certificate so (`invalid peer certificate: UnknownIssuer`).
        AwsError::Unreachable { detail, .. } if detail.contains("invalid peer certificate") => Some(
            "the endpoint's TLS certificate is not trusted here: if a proxy or a private CA signs it, set AWS_CA_BUNDLE to that CA's PEM file; otherwise something is intercepting the connection".into(),
        ),
        AwsError::Unreachable { .. } | AwsError::Transport { .. } => {
            Some("check the network path to the AWS endpoint (and AWS_ENDPOINT_URL* if you set them)".into())
        }
        AwsError::Unreadable { .. } => Some(
            "something other than AWS may have answered (a proxy or firewall): check HTTPS_PROXY and AWS_ENDPOINT_URL*; -vvv logs the answer, with secrets removed".into(),
        ),
        AwsError::Sso(sso) => match sso.as_ref() {
            SsoError::Portal { source, .. } => aws_hint(source),
            SsoError::SignInNeeded { .. } | SsoError::NoAccess { .. } => None,
        },
        AwsError::NoRegion | AwsError::BadRegion { .. } | AwsError::Mfa(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_from_codes() {
        let e = anyhow::Error::new(AwsError::Service {
            service: "EC2",
            operation: "DescribeInstances",
            code: "UnauthorizedOperation".into(),
            message: "no".into(),
            request_id: None,
        })
        .context("resolving web");
        assert!(hint(&e).unwrap().contains("may not call DescribeInstances"));
        let e = anyhow::Error::new(AwsError::NoCredentials {
            service: "EC2",
            operation: "DescribeInstances",
            detail: "no credentials in the chain".into(),
        });
        assert!(hint(&e).unwrap().starts_with("no usable AWS credentials"));
        let e = anyhow::Error::new(AwsError::Unreachable {
            service: "EC2",
            operation: "DescribeInstances",
            detail: "dns error".into(),
            name_lookup: true,
        });
        assert!(hint(&e).unwrap().contains("check that --region"));
        assert!(hint(&anyhow::anyhow!("plain")).is_none());
        // EC2's AuthFailure is about the credentials, not a permission (the lab found it, issue 18).
        let service = |code: &str| {
            anyhow::Error::new(AwsError::Service {
                service: "EC2",
                operation: "DescribeInstances",
                code: code.into(),
                message: "no".into(),
                request_id: None,
            })
        };
        assert!(hint(&service("AuthFailure")).unwrap().starts_with("AWS does not accept these credentials"));
        assert!(hint(&service("InvalidSignatureException")).unwrap().contains("system clock"));
        assert!(hint(&service("RequestExpired")).unwrap().contains("clock"));
    }

    #[test]
    fn rendered_errors_are_printable_and_scrubbed() {
        redact::register("renderTestSessionToken0123456789");
        let e = anyhow::anyhow!("the agent said: \x1b]0;owned\x07 token renderTestSessionToken0123456789")
            .context("line one\nline two");
        assert_eq!(
            render(&e),
            "ec2-broker: error: line one\nline two: the agent said: \\x1b]0;owned\\x07 token <redacted>\n"
        );
    }
}
