//! IAM Identity Center (SSO) profiles: aws-config signs in (legacy `sso_start_url` profiles and
//! `sso_session` ones, and roles whose `source_profile` is one), and [`SsoGuard`] wraps its
//! provider so a failure reads as what to do (`run aws sso login --profile P`) instead of the
//! SDK's chain of errors. The cached token is never read into memory here
//! ([`sso_profile::token_state`] reads only its expiry).
//!
//! ```text
//!  credentials ◀─ SsoGuard ◀─ aws-config chain ─▶ token cache ─▶ portal GetRoleCredentials
//!                    └─ on failure: the portal's refusal, else the cache file's state ─▶ SsoError
//! ```

use std::error::Error as _;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sso::config::http::HttpResponse;
use aws_sdk_sso::error::SdkError;
use aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError;

use super::cache;
use super::sso_profile::{self, SsoSignIn, TokenState};
use crate::aws::AwsError;

/// The selected profile's Identity Center sign-in (its own, or its `source_profile`'s), if its
/// credentials come from one.
pub(crate) async fn load(explicit_profile: Option<&str>) -> Option<SsoSignIn> {
    let (profiles, name) = super::profiles(explicit_profile).await?;
    sso_profile::sign_in(&profiles, &name)
}

/// Why an Identity Center profile has no credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SsoError {
    /// There is no usable sign-in: the user signs in again.
    #[error("profile {profile} signs in with IAM Identity Center and {why}: run `aws sso login --profile {profile}`")]
    SignInNeeded {
        /// The profile with the SSO settings.
        profile: String,
        /// What is wrong with the sign-in.
        why: SignInProblem,
    },
    /// The portal does not give this user the profile's role (HTTP 403 `ForbiddenException`).
    #[error(
        "profile {profile}: IAM Identity Center gives this user no access to role {role} in account {account}: check \
         sso_account_id and sso_role_name with `aws sso list-account-roles`, or ask for the permission set"
    )]
    NoAccess {
        /// The profile with the SSO settings.
        profile: String,
        /// `sso_role_name`.
        role: String,
        /// `sso_account_id`.
        account: String,
    },
    /// The portal failed otherwise (throttling, unreachable, an error it does not document).
    #[error("profile {profile}: getting the role's credentials from IAM Identity Center")]
    Portal {
        /// The profile with the SSO settings.
        profile: String,
        /// The portal's error.
        #[source]
        source: AwsError,
    },
}

/// What is wrong with a cached Identity Center sign-in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignInProblem {
    /// No token cache file.
    #[error("there is no cached sign-in")]
    Missing,
    /// The cache file's token expired.
    #[error("its sign-in expired at {0}")]
    Expired(String),
    /// The cache file cannot be read as a token.
    #[error("its cached sign-in cannot be read")]
    Unreadable,
    /// The portal refused a token that has not expired by the file's word (signed out, revoked).
    #[error("IAM Identity Center no longer accepts its sign-in")]
    Refused,
}

/// aws-config's credentials provider for an Identity Center profile, with failures explained
/// and the credentials held while they last (so the early check in `Aws::load` and the first
/// call share one GetRoleCredentials).
#[derive(Debug)]
pub(crate) struct SsoGuard {
    inner: SharedCredentialsProvider,
    sign_in: SsoSignIn,
    held: tokio::sync::Mutex<Option<Credentials>>,
}

impl SsoGuard {
    /// Wraps `inner`, the chain for the profile `sign_in` describes.
    pub(crate) fn new(inner: SharedCredentialsProvider, sign_in: SsoSignIn) -> Self {
        SsoGuard { inner, sign_in, held: Default::default() }
    }

    /// Credentials, or the failure: an [`SsoError`] when it is the sign-in's, else aws-config's.
    pub(crate) async fn credentials(&self) -> Result<Credentials, Failure> {
        let mut held = self.held.lock().await;
        let now = SystemTime::now();
        if let Some(c) = held.as_ref().filter(|c| c.expiry().is_none_or(|e| cache::usable(e, now))) {
            return Ok(c.clone());
        }
        match self.inner.provide_credentials().await {
            Ok(c) => {
                *held = Some(c.clone());
                Ok(c)
            }
            Err(e) => Err(match explain(&self.sign_in, &e, self.token_state(now)) {
                Some(sso) => Failure::Sso(sso),
                None => Failure::Other(e),
            }),
        }
    }

    fn token_state(&self, now: SystemTime) -> TokenState {
        let Some(home) = std::env::var_os("HOME").map(Into::into).or_else(dirs::home_dir) else {
            return TokenState::Missing;
        };
        let file = sso_profile::cache_file(&home, &self.sign_in.cache_key);
        let contents = std::fs::read(&file).ok();
        let state = sso_profile::token_state(contents.as_deref(), now);
        tracing::debug!(file = %file.display(), ?state, "SSO token cache");
        state
    }
}

/// A failure of [`SsoGuard::credentials`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// The sign-in's.
    Sso(SsoError),
    /// Something else in the chain (a role assumed after the sign-in, say): aws-config's error.
    Other(CredentialsError),
}

impl ProvideCredentials for SsoGuard {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.credentials().await.map_err(|f| match f {
                Failure::Sso(e) => CredentialsError::provider_error(e),
                Failure::Other(e) => e,
            })
        })
    }
}

/// The sign-in's part in `err`: the portal's refusal when the chain holds one, else what the
/// cache file says (`state`); `None` when the sign-in looks fine and the portal said nothing.
fn explain(sign_in: &SsoSignIn, err: &CredentialsError, state: TokenState) -> Option<SsoError> {
    let profile = sign_in.profile.clone();
    let needed = |why| Some(SsoError::SignInNeeded { profile: profile.clone(), why });
    if let Some(portal) = portal_error(err) {
        let portal = AwsError::from_sdk_ref("IAM Identity Center", "GetRoleCredentials", portal);
        return match (portal.code(), state) {
            (Some("UnauthorizedException"), TokenState::Expired(at)) => needed(SignInProblem::Expired(at)),
            (Some("UnauthorizedException"), _) => needed(SignInProblem::Refused),
            (Some("ForbiddenException"), _) => Some(SsoError::NoAccess {
                profile: profile.clone(),
                role: sign_in.role_name.clone().unwrap_or_else(|| "(no sso_role_name)".into()),
                account: sign_in.account_id.clone().unwrap_or_else(|| "(no sso_account_id)".into()),
            }),
            _ => Some(SsoError::Portal { profile: profile.clone(), source: portal }),
        };
    }
    match state {
        TokenState::Missing => needed(SignInProblem::Missing),
        TokenState::Expired(at) => needed(SignInProblem::Expired(at)),
        TokenState::Unreadable => needed(SignInProblem::Unreadable),
        TokenState::Current => None,
    }
}

/// The portal's GetRoleCredentials error, wherever it sits in `err`'s chain.
fn portal_error(err: &CredentialsError) -> Option<&SdkError<GetRoleCredentialsError, HttpResponse>> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = next {
        if let Some(portal) = e.downcast_ref::<SdkError<GetRoleCredentialsError, HttpResponse>>() {
            return Some(portal);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use aws_sdk_sts::error::ErrorMetadata;

    use super::*;

    /// aws-config's error when the portal answers `code` (HTTP `status`).
    fn portal_refusal(status: u16, code: &str) -> CredentialsError {
        let meta = ErrorMetadata::builder().code(code).message("No access").build();
        let raw = HttpResponse::new(status.try_into().expect("a valid status"), "{}".to_string().into());
        CredentialsError::provider_error(SdkError::service_error(GetRoleCredentialsError::generic(meta), raw))
    }

    #[test]
    fn the_portals_refusals() {
        let expired = TokenState::Expired("2027-01-15T08:00:00Z".into());
        let e = explain(&sign_in(), &portal_refusal(401, "UnauthorizedException"), expired).unwrap();
        assert!(matches!(e, SsoError::SignInNeeded { why: SignInProblem::Expired(_), .. }), "{e:?}");
        let e = explain(&sign_in(), &portal_refusal(401, "UnauthorizedException"), TokenState::Current).unwrap();
        assert!(e.to_string().contains("IAM Identity Center no longer accepts its sign-in: run `aws sso login"), "{e}");
        let e = explain(&sign_in(), &portal_refusal(403, "ForbiddenException"), TokenState::Current).unwrap();
        assert!(
            e.to_string().starts_with(
                "profile dev: IAM Identity Center gives this user no access to role lab-readonly in account 123456789012"
            ),
            "{e}"
        );
        let e = explain(&sign_in(), &portal_refusal(429, "TooManyRequestsException"), TokenState::Current).unwrap();
        let SsoError::Portal { source, .. } = e else { panic!("{e:?}") };
        assert_eq!(source.code(), Some("TooManyRequestsException"));
    }

    fn sign_in() -> SsoSignIn {
        SsoSignIn {
            profile: "dev".into(),
            cache_key: "corp".into(),
            account_id: Some("123456789012".into()),
            role_name: Some("lab-readonly".into()),
        }
    }

    #[test]
    fn a_missing_or_expired_sign_in_says_to_log_in() {
        let err = CredentialsError::provider_error("failed to read `/h/.aws/sso/cache/x.json`");
        let e = explain(&sign_in(), &err, TokenState::Missing).unwrap();
        assert_eq!(
            e.to_string(),
            "profile dev signs in with IAM Identity Center and there is no cached sign-in: run `aws sso login --profile dev`"
        );
        let e = explain(&sign_in(), &err, TokenState::Expired("2027-01-15T08:00:00Z".into())).unwrap();
        assert!(
            e.to_string().contains("its sign-in expired at 2027-01-15T08:00:00Z: run `aws sso login --profile dev`")
        );
        assert!(matches!(
            explain(&sign_in(), &err, TokenState::Unreadable),
            Some(SsoError::SignInNeeded { why: SignInProblem::Unreadable, .. })
        ));
        // A current sign-in: the failure is another part of the chain's.
        assert!(explain(&sign_in(), &err, TokenState::Current).is_none());
    }
}
