//! Everything that speaks to AWS. SDK types stop here: the rest of the crate sees
//! [`Instance`](crate::instance::Instance) and the error types below.
//!
//! Credentials, Region and endpoints come from `aws-config`'s default chain: profiles, SSO,
//! assume-role, `credential_process`, environment, and the standard `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (`../shared/spec/aws-apis.md` §1.4). There is no
//! other way to point the broker at an endpoint.

pub mod ec2;
pub mod eice;
pub mod instance_connect;
pub mod inventory;
pub mod known_hosts;
mod open_sessions;
pub mod security_groups;
pub mod serial;
pub mod ssm;
pub mod sts;

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// One attempt of one API call may take this long before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// All attempts of one call together (the SDK makes up to 3, with back-off).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// Clients for the services the broker calls, sharing one loaded configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    /// The Region every call goes to.
    pub region: String,
    ec2: aws_sdk_ec2::Client,
    instance_connect: aws_sdk_ec2instanceconnect::Client,
    ssm: aws_sdk_ssm::Client,
    sts: aws_sdk_sts::Client,
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    open_sessions: open_sessions::OpenSessions,
}

/// An AWS call that failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// No Region could be found anywhere in the chain.
    #[error("no AWS Region: pass --region, add .REGION to the host, or set AWS_REGION")]
    NoRegion,
    /// The profile's MFA role could not be assumed (see [`crate::credentials`]).
    #[error(transparent)]
    Mfa(Box<crate::credentials::MfaError>),
    /// The service answered with an error code.
    #[error("{service} {operation}: {code}: {message}")]
    Service {
        /// `EC2`, `EC2 Instance Connect`, ...
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// The error code (`UnauthorizedOperation`, `RequestLimitExceeded`, ...).
        code: String,
        /// The service's message.
        message: String,
    },
    /// The call did not get an answer (network, endpoint, credentials, timeout).
    #[error("{service} {operation}: {detail}")]
    Transport {
        /// Service name.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What went wrong, with the SDK's error chain.
        detail: String,
    },
}

impl AwsError {
    /// The service's error code, if the service answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn from_sdk<E, R>(service: &'static str, operation: &'static str, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        if let SdkError::ServiceError(ctx) = &err {
            let e = ctx.err();
            if let Some(code) = e.code() {
                return AwsError::Service {
                    service,
                    operation,
                    code: code.to_string(),
                    message: e.message().unwrap_or("(no message)").to_string(),
                };
            }
        }
        let detail = match &err {
            SdkError::TimeoutError(_) => {
                format!("no answer within {}s", OPERATION_TIMEOUT.as_secs())
            }
            _ => aws_sdk_ec2::error::DisplayErrorContext(&err).to_string(),
        };
        AwsError::Transport { service, operation, detail }
    }
}

/// Per-attempt and per-operation timeouts for every client.
pub(crate) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build()
}

impl Aws {
    /// Loads configuration: `profile` and `region` override the environment and config files.
    pub async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Aws, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        let config = loader.load().await;
        let region = config.region().ok_or(AwsError::NoRegion)?.to_string();
        // aws-config ignores `mfa_serial`: such a role is the broker's to assume. Its credentials
        // are had now, so a refused or missing code reads as such, not as a failed EC2 call.
        let mfa =
            crate::credentials::provider::for_profile(profile, &region).await.map_err(|e| AwsError::Mfa(e.into()))?;
        let config = match mfa {
            None => config,
            Some(provider) => {
                provider.credentials().await.map_err(|e| AwsError::Mfa(e.into()))?;
                let provider = aws_credential_types::provider::SharedCredentialsProvider::new(provider);
                config.into_builder().credentials_provider(provider).build()
            }
        };
        tracing::debug!(%region, profile = profile.unwrap_or("(default)"), "AWS configuration loaded");
        Ok(Aws {
            region,
            ec2: aws_sdk_ec2::Client::new(&config),
            instance_connect: aws_sdk_ec2instanceconnect::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            credentials: config.credentials_provider(),
            open_sessions: Default::default(),
        })
    }
}
