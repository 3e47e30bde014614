//! The credentials provider for an MFA role: credentials held by this process, else the cache
//! file, else the source's credentials, a code from the terminal, STS AssumeRole with
//! `SerialNumber` + `TokenCode`, and a new cache file.
//!
//! One lock guards the whole sequence, so the SDK's concurrent calls ask for a code once.

use std::path::PathBuf;
use std::time::SystemTime;

use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials};
use aws_sdk_sts::config::Region;
use aws_sdk_sts::error::DisplayErrorContext;
use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
use aws_types::SdkConfig;

use super::cache::{self, PROVIDER_NAME};
use super::mfa_profile::{self, MfaRole, RoleSource};
use super::{MfaError, prompt};
use crate::aws::AwsError;

/// STS's global endpoint Region, for a source with no Region anywhere.
const FALLBACK_REGION: &str = "us-east-1";

/// Credentials for one MFA role ([`ProvideCredentials`] for the SDK).
#[derive(Debug)]
pub(crate) struct MfaCredentialsProvider {
    role: MfaRole,
    region: Option<Region>,
    cache_dir: Option<PathBuf>,
    held: tokio::sync::Mutex<Option<Credentials>>,
}

/// The broker's provider when the selected profile (`profile`, else `AWS_PROFILE`, else
/// `default`) is an MFA role that the broker must assume ([`mfa_profile::broker_provides`]);
/// `None` leaves credentials to aws-config's chain. Logs which it is.
pub(crate) async fn for_profile(
    profile: Option<&str>,
    region: &str,
) -> Result<Option<MfaCredentialsProvider>, MfaError> {
    let Some(role) = mfa_profile::load(profile).await? else {
        tracing::debug!("credentials: aws-config's chain (the profile has no role_arn + mfa_serial)");
        return Ok(None);
    };
    let access_key_in_env = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty());
    if !mfa_profile::broker_provides(&role, access_key_in_env) {
        tracing::debug!(profile = %role.profile, "credentials: aws-config's chain (AWS_ACCESS_KEY_ID is set and wins over the MFA role)");
        return Ok(None);
    }
    tracing::debug!(profile = %role.profile, role = %role.role_arn, source = %role.source, "credentials: MFA role, assumed by ec2-broker");
    Ok(Some(MfaCredentialsProvider::new(role, Some(Region::new(region.to_string())))))
}

impl MfaCredentialsProvider {
    /// A provider for `role`, calling STS in `region` (else the source's Region, else
    /// us-east-1), caching in [`cache::default_dir`].
    pub(crate) fn new(role: MfaRole, region: Option<Region>) -> Self {
        MfaCredentialsProvider { role, region, cache_dir: cache::default_dir(), held: Default::default() }
    }

    /// A provider for `role` as `ec2-broker login` wants it: STS in `region` when given, else in
    /// the Region the role's profile names (aws-config's Region chain).
    pub(crate) async fn for_login(role: MfaRole, region: Option<&str>) -> Self {
        let region = match region {
            Some(r) => Some(Region::new(r.to_string())),
            None => {
                let chain =
                    aws_config::default_provider::region::DefaultRegionChain::builder().profile_name(&role.profile);
                chain.build().region().await
            }
        };
        MfaCredentialsProvider::new(role, region)
    }

    #[cfg(test)]
    /// Caches in `dir` instead (`None`: no cache file at all).
    pub(crate) fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The role.
    pub(crate) fn role(&self) -> &MfaRole {
        &self.role
    }

    /// The cache file for this role, if there is a cache directory.
    pub(crate) fn cache_file(&self) -> Option<PathBuf> {
        self.cache_dir.as_deref().map(|d| cache::file(d, &cache::key(&self.role)))
    }

    /// The cache file's credentials if they are usable at `now`.
    pub(crate) fn cached(&self, now: SystemTime) -> Option<Credentials> {
        self.cached_checked(now).ok().flatten()
    }

    /// [`Self::cached`], with a cache that cannot be trusted as an error (naming what and why).
    fn cached_checked(&self, now: SystemTime) -> Result<Option<Credentials>, MfaError> {
        let Some(dir) = self.cache_dir.as_deref() else { return Ok(None) };
        let found = cache::read(dir, &cache::key(&self.role)).map_err(MfaError::Cache)?;
        Ok(found.filter(|c| c.expiry().is_some_and(|e| cache::usable(e, now))))
    }

    /// The right to ask for the code (another broker may be asking right now); none without a
    /// cache directory, where there is nothing to share.
    async fn prompt_lock(&self) -> Result<Option<prompt::PromptLock>, MfaError> {
        let Some(dir) = self.cache_dir.as_deref() else { return Ok(None) };
        let name = cache::lock_name(&cache::key(&self.role));
        prompt::PromptLock::acquire(dir, &name, &self.role.mfa_serial, prompt::PROMPT_WAIT).await.map(Some)
    }

    /// Usable credentials: the ones this process holds, the cache file's, or new ones (which
    /// asks for a code on the terminal).
    pub(crate) async fn credentials(&self) -> Result<Credentials, MfaError> {
        let mut held = self.held.lock().await;
        let now = SystemTime::now();
        if let Some(c) = held.as_ref().filter(|c| c.expiry().is_some_and(|e| cache::usable(e, now))) {
            return Ok(c.clone());
        }
        if let Some(c) = self.cached_checked(now)? {
            tracing::info!(
                "using cached MFA credentials for role {} until {}",
                self.role.role_arn,
                iso8601(c.expiry().unwrap_or(now))
            );
            *held = Some(c.clone());
            return Ok(c);
        }
        // Another broker may be asking right now: wait for it, then look again before asking.
        let _prompt = self.prompt_lock().await?;
        let now = SystemTime::now();
        if let Some(c) = self.cached_checked(now)? {
            tracing::info!(
                "using the MFA credentials another ec2-broker just cached for role {} until {}",
                self.role.role_arn,
                iso8601(c.expiry().unwrap_or(now))
            );
            *held = Some(c.clone());
            return Ok(c);
        }
        let fresh = self.assume_locked().await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// New credentials whatever the cache holds (`login --force`): asks for a code, assumes the
    /// role, replaces the cache file.
    pub(crate) async fn assume(&self) -> Result<Credentials, MfaError> {
        let mut held = self.held.lock().await;
        let _prompt = self.prompt_lock().await?;
        let fresh = self.assume_locked().await?;
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// The source's credentials first (no code is asked for when they are missing), then the code,
    /// AssumeRole, and the cache file. Nothing is cached when STS refuses.
    async fn assume_locked(&self) -> Result<Credentials, MfaError> {
        let config = self.source_config().await;
        let source_credentials = self.source_credentials(&config).await?;
        let code = prompt::ask(&self.role.profile, &self.role.mfa_serial).await?;
        let mut sts_config = aws_sdk_sts::config::Builder::from(&config).credentials_provider(source_credentials);
        if config.region().is_none() {
            sts_config = sts_config.region(Region::from_static(FALLBACK_REGION));
        }
        let sts = aws_sdk_sts::Client::from_conf(sts_config.build());
        let session_name = self.role.role_session_name.clone().unwrap_or_else(|| {
            format!(
                "ec2-broker-{}",
                SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
            )
        });
        let answer = sts
            .assume_role()
            .role_arn(&self.role.role_arn)
            .role_session_name(session_name)
            .serial_number(&self.role.mfa_serial)
            .token_code(code.as_str())
            .set_duration_seconds(self.role.duration_seconds.and_then(|d| i32::try_from(d).ok()))
            .set_external_id(self.role.external_id.clone())
            .send()
            .await
            .map_err(|e| refusal(&self.role, AwsError::from_sdk("STS", "AssumeRole", e)))?;
        let no_credentials = || MfaError::NoCredentials { role_arn: self.role.role_arn.clone() };
        let c = answer.credentials().ok_or_else(no_credentials)?;
        let expiry = SystemTime::try_from(*c.expiration()).map_err(|_| no_credentials())?;
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expiry),
            PROVIDER_NAME,
        );
        match self.cache_dir.as_deref().map(|d| cache::write(d, &cache::key(&self.role), &credentials)) {
            Some(Ok(file)) => tracing::debug!(file = %file.display(), "MFA role credentials cached"),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not cache the MFA role's credentials: the next connection asks again")
            }
            None => tracing::debug!("no cache directory: MFA role credentials not cached"),
        }
        tracing::info!("assumed role {} with an MFA code, until {}", self.role.role_arn, iso8601(expiry));
        Ok(credentials)
    }

    /// aws-config for the source: its credentials chain, Region and endpoint settings
    /// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`), so STS is reached where the other services are.
    async fn source_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(super::super::timeouts());
        loader = match &self.role.source {
            RoleSource::Profile(name) => loader.profile_name(name),
            RoleSource::Environment => loader.credentials_provider(EnvironmentVariableCredentialsProvider::new()),
        };
        if let Some(region) = &self.region {
            loader = loader.region(region.clone());
        }
        loader.load().await
    }

    async fn source_credentials(&self, config: &SdkConfig) -> Result<Credentials, MfaError> {
        let missing = |detail: String| MfaError::SourceCredentials {
            origin: self.role.source.to_string(),
            role_arn: self.role.role_arn.clone(),
            detail,
        };
        let provider = config.credentials_provider().ok_or_else(|| missing("no credentials provider".into()))?;
        provider.provide_credentials().await.map_err(|e| missing(DisplayErrorContext(&e).to_string()))
    }
}

impl ProvideCredentials for MfaCredentialsProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.credentials().await.map_err(CredentialsError::provider_error)
        })
    }
}

/// STS's error as the user should read it: a refused code says so (IAM answers AccessDenied
/// "MultiFactorAuthentication failed with invalid MFA one time pass code"); anything else is
/// the AssumeRole error.
fn refusal(role: &MfaRole, err: AwsError) -> MfaError {
    match &err {
        AwsError::Service { code, message, .. }
            if code == "AccessDenied" && message.contains("MultiFactorAuthentication") =>
        {
            MfaError::CodeRefused {
                serial: role.mfa_serial.clone(),
                role_arn: role.role_arn.clone(),
                message: message.trim().to_string(),
            }
        }
        _ => MfaError::AssumeRole { role_arn: role.role_arn.clone(), source: err },
    }
}

/// `2026-11-23T19:39:02Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    DateTime::from(t).fmt(DateTimeFormat::DateTime).unwrap_or_else(|_| format!("{t:?}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn role() -> MfaRole {
        MfaRole::example()
    }

    fn service(code: &str, message: &str) -> AwsError {
        AwsError::Service {
            service: "STS",
            operation: "AssumeRole",
            code: code.into(),
            message: message.into(),
            request_id: None,
        }
    }

    #[test]
    fn a_refused_code_says_so() {
        let e = refusal(
            &role(),
            service("AccessDenied", "MultiFactorAuthentication failed with invalid MFA one time pass code. "),
        );
        assert!(matches!(e, MfaError::CodeRefused { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "the MFA code was refused for arn:aws:iam::123456789012:mfa/alice (STS AssumeRole \
             arn:aws:iam::123456789012:role/lab-admin-mfa: MultiFactorAuthentication failed with invalid MFA one time \
             pass code.): try again"
        );
    }

    #[test]
    fn other_refusals_stay_sts_errors() {
        let e = refusal(
            &role(),
            service("AccessDenied", "User: arn:aws:iam::1:user/a is not authorized to perform: sts:AssumeRole"),
        );
        assert!(matches!(e, MfaError::AssumeRole { .. }), "{e:?}");
        let e = refusal(&role(), service("ExpiredToken", "MultiFactorAuthentication"));
        assert!(matches!(e, MfaError::AssumeRole { .. }), "{e:?}");
    }

    #[test]
    fn times_read_as_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH + Duration::from_secs(1_800_000_000)), "2027-01-15T08:00:00Z");
    }

    #[tokio::test]
    async fn a_fresh_cache_file_is_used_without_asking() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let expiry = SystemTime::now() + Duration::from_secs(3600);
        let creds = Credentials::new("ASIACACHED", "s", Some("t".into()), Some(expiry), PROVIDER_NAME);
        cache::write(&dir, &cache::key(&role()), &creds).unwrap();
        let p = MfaCredentialsProvider::new(role(), None).with_cache_dir(Some(dir));
        // A stale or missing cache would try the source profile and the terminal, and fail here.
        assert_eq!(p.credentials().await.unwrap().access_key_id(), "ASIACACHED");
        assert_eq!(p.provide_credentials().await.unwrap().access_key_id(), "ASIACACHED");
    }

    #[test]
    fn a_stale_cache_file_is_not_offered() {
        let tmp = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let stale =
            Credentials::new("ASIAOLD", "s", Some("t".into()), Some(now + Duration::from_secs(60)), PROVIDER_NAME);
        cache::write(tmp.path(), &cache::key(&role()), &stale).unwrap();
        let p = MfaCredentialsProvider::new(role(), None).with_cache_dir(Some(tmp.path().to_path_buf()));
        assert!(p.cached(now).is_none());
        assert!(p.cached(now - Duration::from_secs(3600)).is_some());
    }
}
