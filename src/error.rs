//! The only place errors become words: `ec2-broker: error: <chain>` then an optional hint,
//! on stderr. Exit codes: 0 success, 1 failure, 2 usage (clap's own).

use std::process::ExitCode;

use crate::aws::AwsError;

/// Prints `err` and its hint, if one applies; returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("ec2-broker: error: {err:#}");
    if let Some(hint) = hint(err) {
        eprintln!("  hint: {hint}");
    }
    ExitCode::from(1)
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
        AwsError::Service { code, operation, .. } => match code.as_str() {
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" => {
                Some("your AWS credentials expired: refresh them (for SSO: aws sso login --profile NAME)".into())
            }
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "AuthFailure" => Some(format!(
                "the IAM identity in use may not call {operation}: check with aws sts get-caller-identity, and add the permission or pick another --profile"
            )),
            "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" => {
                Some("AWS does not recognise these credentials: check the access key, AWS_PROFILE or --profile".into())
            }
            "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                Some("AWS is throttling API calls from this account: wait a little and retry".into())
            }
            _ => None,
        },
        AwsError::Transport { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            if d.contains("credential") {
                Some("no usable AWS credentials: set AWS_PROFILE or pass --profile, or run aws configure / aws sso login".into())
            } else {
                Some("check the network path to the AWS endpoint (and AWS_ENDPOINT_URL* if you set them)".into())
            }
        }
        AwsError::NoRegion | AwsError::Mfa(_) => None,
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
        })
        .context("resolving web");
        assert!(hint(&e).unwrap().contains("may not call DescribeInstances"));
        let e = anyhow::Error::new(AwsError::Transport {
            service: "EC2",
            operation: "DescribeInstances",
            detail: "dispatch failure: no credentials in the chain".into(),
        });
        assert!(hint(&e).unwrap().starts_with("no usable AWS credentials"));
        assert!(hint(&anyhow::anyhow!("plain")).is_none());
    }
}
