//! Everything that speaks to AWS. SDK types stop here: the rest of the crate sees
//! [`Instance`](crate::target::instance::Instance) and the error types below.
//!
//! Credentials, Region and endpoints come from `aws-config`'s default chain: profiles, SSO,
//! assume-role, `credential_process`, environment, and the standard `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (`../shared/spec/aws-apis.md` §1.4). There is no
//! other way to point the broker at an endpoint.

mod credential_cache;
pub(crate) mod credentials;
pub(crate) mod ec2;
pub(crate) mod ec2_query;
pub(crate) mod eice;
mod error_kind;
pub(crate) mod iam;
pub(crate) mod instance_connect;
pub(crate) mod inventory;
pub(crate) mod key_pairs;
pub(crate) mod kms;
pub(crate) mod known_hosts;
pub(crate) mod network;
mod open_sessions;
pub(crate) mod run_command;
pub(crate) use error_kind::{ErrorKind, kind_of_code};
pub(crate) mod security_groups;
pub(crate) mod serial;
pub(crate) mod session_preferences;
pub(crate) mod ssm;
pub(crate) mod ssm_agent;
pub(crate) mod sts;

use std::error::Error as _;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_types::region::Region;
use aws_types::request_id::RequestId;

use crate::redact;
use crate::text::{clip, printable, printable_lines};

/// One attempt of one API call may take this long before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// All attempts of one call together (the SDK makes up to 3, with back-off).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest service message we show: AWS's own are one or two sentences (IAM denials with an ARN
/// and an action run to about 300 characters); anything longer is a body that is not a message.
const MAX_MESSAGE_CHARS: usize = 600;
/// The target of the SDK's full error context, logged at TRACE only and scrubbed.
const RAW_ERROR_TARGET: &str = "ec2_broker::aws::sdk_error";

/// Clients for the services the broker calls, sharing one loaded configuration.
#[derive(Debug, Clone)]
pub(crate) struct Aws {
    /// The Region every call goes to.
    pub region: String,
    clients: std::sync::Arc<Clients>,
    credentials: credential_cache::CredentialCache,
    open_sessions: open_sessions::OpenSessions,
}

/// Each service's client, built on first use: a connection that asks AWS nothing (a cached
/// lookup and a reused key) builds none, and one that pushes a key builds two of the six. Each
/// build parses the SDK's endpoint partitions (0.3 ms apiece in a trace) and touches code pages
/// the process would otherwise never map.
#[derive(Debug)]
struct Clients {
    config: aws_types::SdkConfig,
    ec2: OnceLock<ec2_query::Ec2>,
    instance_connect: OnceLock<aws_sdk_ec2instanceconnect::Client>,
    iam: OnceLock<aws_sdk_iam::Client>,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    kms: OnceLock<aws_sdk_kms::Client>,
    sts: OnceLock<aws_sdk_sts::Client>,
}

impl Clients {
    fn new(config: aws_types::SdkConfig) -> Clients {
        Clients {
            config,
            ec2: OnceLock::new(),
            instance_connect: OnceLock::new(),
            iam: OnceLock::new(),
            ssm: OnceLock::new(),
            kms: OnceLock::new(),
            sts: OnceLock::new(),
        }
    }
}

/// `fn NAME(&self) -> &CLIENT`: the client, built on first use.
macro_rules! lazy_client {
    ($($name:ident: $client:ty),* $(,)?) => {
        impl Aws {
            $(
                fn $name(&self) -> &$client {
                    let c = &self.clients;
                    c.$name.get_or_init(|| <$client>::new(&c.config))
                }
            )*
        }
    };
}

impl Aws {
    /// The EC2 client (not the SDK's: see [`ec2_query`]), built on first use.
    fn ec2(&self) -> &ec2_query::Ec2 {
        let c = &self.clients;
        c.ec2.get_or_init(|| ec2_query::Ec2::new(&c.config, self.credentials.clone()))
    }
}

lazy_client! {
    instance_connect: aws_sdk_ec2instanceconnect::Client,
    iam: aws_sdk_iam::Client,
    ssm: aws_sdk_ssm::Client,
    kms: aws_sdk_kms::Client,
    sts: aws_sdk_sts::Client,
}

/// An AWS call that failed. Every text in it is scrubbed of secrets and made printable: the SDK's
/// own error context (which holds raw HTTP bodies) is logged at TRACE only, scrubbed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AwsError {
    /// No Region could be found anywhere in the chain.
    #[error("no AWS Region: pass --region, add .REGION to the host, or set AWS_REGION")]
    NoRegion,
    /// The Region is not something AWS could name.
    #[error(
        "the Region '{region}' is not a valid Region name: Region names are lower-case letters, digits and hyphens, like eu-west-1 (check --region, the host's .REGION suffix, AWS_REGION and the profile's region)"
    )]
    BadRegion {
        /// The name as given (made printable).
        region: String,
    },
    /// The profile's MFA role could not be assumed (see [`crate::aws::credentials`]).
    #[error(transparent)]
    Mfa(Box<credentials::MfaError>),
    /// The profile's IAM Identity Center sign-in gives no credentials (see
    /// [`crate::aws::credentials::sso`]).
    #[error(transparent)]
    Sso(Box<credentials::SsoError>),
    /// The service answered with an error code.
    #[error("{service} {operation}: {code}: {message}{}", request_id_suffix(request_id.as_deref()))]
    Service {
        /// `EC2`, `EC2 Instance Connect`, ...
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// The error code (`UnauthorizedOperation`, `RequestLimitExceeded`, ...).
        code: String,
        /// The service's message (scrubbed, printable, at most 600 characters).
        message: String,
        /// The request id (`x-amzn-RequestId`), for AWS support (boxed: an `AwsError` sits inside
        /// other errors, and `Result`s carrying them should stay small).
        request_id: Option<Box<str>>,
    },
    /// Something answered, but not with an AWS error this client can read: no error code, or a
    /// body that does not parse (a proxy's page, a truncated answer).
    #[error(
        "{service} {operation}: the endpoint answered HTTP {status} without a readable AWS error{}",
        request_id_suffix(request_id.as_deref())
    )]
    Unreadable {
        /// Service name.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// The request id, when the answer carried one.
        request_id: Option<Box<str>>,
    },
    /// No credentials could be loaded.
    #[error("{service} {operation}: no usable AWS credentials: {detail}")]
    NoCredentials {
        /// Service name.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What each credential source said.
        detail: String,
    },
    /// The endpoint could not be reached (connection refused, name lookup, TLS, connect timeout).
    #[error("{service} {operation}: cannot reach the endpoint: {detail}")]
    Unreachable {
        /// Service name.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What failed, from the connector.
        detail: String,
        /// The endpoint's host name did not resolve (often a Region that does not exist).
        name_lookup: bool,
    },
    /// The call did not get an answer otherwise (request construction, timeout).
    #[error("{service} {operation}: {detail}")]
    Transport {
        /// Service name.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },
}

fn request_id_suffix(id: Option<&str>) -> String {
    id.map(|id| format!(" (request id {id})")).unwrap_or_default()
}

impl AwsError {
    /// The service's error code, if the service answered.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The request id of the failed call, when the service answered with one.
    pub(crate) fn request_id(&self) -> Option<&str> {
        match self {
            AwsError::Service { request_id, .. } | AwsError::Unreadable { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Maps an SDK error to a short message: the code, the service's message and the request id
    /// when the service answered; what failed otherwise. Never the SDK's `Debug` dump or a raw
    /// HTTP body: that context goes to the TRACE log (target `ec2_broker::aws::sdk_error`),
    /// scrubbed.
    pub(crate) fn from_sdk<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Self::from_sdk_ref(service, operation, &err)
    }

    /// [`Self::from_sdk`] of an error found by reference (inside another error's chain).
    pub(crate) fn from_sdk_ref<E>(
        service: &'static str,
        operation: &'static str,
        err: &SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if tracing::enabled!(target: RAW_ERROR_TARGET, tracing::Level::TRACE) {
            let raw = DisplayErrorContext(err).to_string();
            tracing::trace!(target: RAW_ERROR_TARGET, service, operation, context = %printable(&redact::scrub(&raw)), "SDK error");
        }
        let request_id = err.request_id().map(request_id_text);
        match err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                let request_id = request_id.or_else(|| e.meta().request_id().map(request_id_text));
                match e.code() {
                    Some(code) => AwsError::Service {
                        service,
                        operation,
                        code: clean(code, 100),
                        message: clean(e.message().unwrap_or("(no message)"), MAX_MESSAGE_CHARS),
                        request_id,
                    },
                    None => {
                        AwsError::Unreadable { service, operation, status: ctx.raw().status().as_u16(), request_id }
                    }
                }
            }
            SdkError::ResponseError(ctx) => {
                AwsError::Unreadable { service, operation, status: ctx.raw().status().as_u16(), request_id }
            }
            SdkError::TimeoutError(_) => AwsError::Transport {
                service,
                operation,
                detail: format!("no answer within {}s", OPERATION_TIMEOUT.as_secs()),
            },
            SdkError::DispatchFailure(failure) => {
                let source = err.source();
                if let Some(creds) = source.and_then(find_credentials_error) {
                    return AwsError::NoCredentials { service, operation, detail: chain_text(creds) };
                }
                let detail = source.map(chain_text).unwrap_or_else(|| "dispatch failure".into());
                if failure.is_io() || failure.is_timeout() {
                    // hyper-util's connector names a failed lookup so; it only picks the hint.
                    let name_lookup = detail.contains("dns error");
                    return AwsError::Unreachable { service, operation, detail, name_lookup };
                }
                AwsError::Transport { service, operation, detail }
            }
            _ => AwsError::Transport { service, operation, detail: chain_text(err) },
        }
    }
}

/// Text from a service (or about its answer), fit for a message: scrubbed of secrets, printable,
/// at most `max` characters.
pub(crate) fn clean(text: &str, max: usize) -> String {
    clip(&printable(redact::scrub(text.trim()).as_ref()), max).into_owned()
}

/// A request id as an error carries it: [`clean`], at most 100 characters.
fn request_id_text(id: &str) -> Box<str> {
    clean(id, 100).into_boxed_str()
}

/// [`clean`], keeping the line breaks: a script's output, read line by line.
pub(crate) fn clean_lines(text: &str, max: usize) -> String {
    clip(&printable_lines(redact::scrub(text.trim()).as_ref()), max).into_owned()
}

/// The error's `Display` and its sources', joined by `: ` (without the SDK's `Debug` dump),
/// scrubbed and printable (line breaks of multi-line texts such as the credential chain's stay).
fn chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // Some errors repeat their source's text in their own.
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    let joined = parts.join(": ");
    clip(&printable_lines(redact::scrub(&joined).as_ref()), 2 * MAX_MESSAGE_CHARS).into_owned()
}

fn find_credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return Some(e);
        }
        next = e.source();
    }
    None
}

/// Whether `name` could be a Region: a DNS label of lower-case letters, digits and inner hyphens
/// (`eu-west-1`, `us-gov-west-1`); the SDK puts it in host names and signatures.
fn valid_region(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The configured credentials provider, registering what it provides with [`redact::register`]
/// so no log line or message can show it.
#[derive(Debug)]
struct Registering(SharedCredentialsProvider);

impl ProvideCredentials for Registering {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let credentials = self.0.provide_credentials().await?;
            redact::register(credentials.access_key_id());
            redact::register(credentials.secret_access_key());
            if let Some(token) = credentials.session_token() {
                redact::register(token);
            }
            Ok(credentials)
        })
    }
}

/// Per-attempt and per-operation timeouts for every client.
pub(crate) fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder().operation_attempt_timeout(ATTEMPT_TIMEOUT).operation_timeout(OPERATION_TIMEOUT).build()
}

impl Aws {
    /// Loads configuration: `profile` and `region` override the environment and config files.
    pub(crate) async fn load(profile: Option<&str>, region: Option<&str>) -> Result<Aws, AwsError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        if let Some(r) = region {
            loader = loader.region(Region::new(r.to_string()));
        }
        let config = loader.load().await;
        let region = config.region().ok_or(AwsError::NoRegion)?.to_string();
        if !valid_region(&region) {
            return Err(AwsError::BadRegion { region: clip(&printable(&region), 64).into_owned() });
        }
        // aws-config ignores `mfa_serial`: such a role is the broker's to assume. Its credentials
        // are had now, so a refused or missing code reads as such, not as a failed EC2 call.
        let mfa = credentials::provider::for_profile(profile, &region).await.map_err(|e| AwsError::Mfa(e.into()))?;
        let config = match mfa {
            None => with_sso_guard(config, profile).await?,
            Some(provider) => {
                provider.credentials().await.map_err(|e| AwsError::Mfa(e.into()))?;
                config.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
            }
        };
        let registering = config.credentials_provider().map(|p| SharedCredentialsProvider::new(Registering(p)));
        // One cache for the EC2 client and, as their provider, the SDK's clients.
        let credentials = credential_cache::CredentialCache::new(registering);
        let mut builder = config.into_builder();
        builder.set_credentials_provider(
            credentials.has_provider().then(|| SharedCredentialsProvider::new(credentials.clone())),
        );
        let config = builder.build();
        tracing::debug!(%region, profile = profile.unwrap_or("(default)"), "AWS configuration loaded");
        Ok(Aws {
            region,
            credentials,
            clients: std::sync::Arc::new(Clients::new(config)),
            open_sessions: Default::default(),
        })
    }
}

/// For a profile that signs in with IAM Identity Center, `config` with its credentials provider
/// wrapped in [`credentials::sso::SsoGuard`], whose credentials are had now: a missing or
/// expired sign-in reads as such (`run aws sso login --profile P`), not as a failed EC2 call.
async fn with_sso_guard(config: aws_types::SdkConfig, profile: Option<&str>) -> Result<aws_types::SdkConfig, AwsError> {
    let (Some(sign_in), Some(inner)) = (credentials::sso::load(profile).await, config.credentials_provider()) else {
        return Ok(config);
    };
    tracing::debug!(profile = %sign_in.profile, "credentials: IAM Identity Center sign-in, through aws-config");
    let guard = credentials::sso::SsoGuard::new(inner, sign_in);
    match guard.credentials().await {
        Ok(_) => {}
        Err(credentials::sso::Failure::Sso(e)) => return Err(AwsError::Sso(Box::new(e))),
        // Not the sign-in's (a role assumed with its credentials, a profile aws-config refuses):
        // said now, since aws-config reports some failures only once ("initialization error
        // already taken" the second time).
        Err(credentials::sso::Failure::Other(e)) => {
            return Err(AwsError::NoCredentials { service: "AWS", operation: "credentials", detail: chain_text(&e) });
        }
    }
    Ok(config.into_builder().credentials_provider(SharedCredentialsProvider::new(guard)).build())
}

#[cfg(test)]
mod tests;
