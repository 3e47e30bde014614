//! The credentials aws-config cannot handle alone. Roles that need an MFA code (`mfa_serial`
//! in a profile), which aws-config ignores: it would call AssumeRole without the code, and IAM
//! refuses that. And IAM Identity Center (SSO) profiles, which aws-config signs in with but
//! whose failures need words ([`sso`]: `run aws sso login --profile P`).
//!
//! ```text
//!  mfa_profile: ProfileSet + name ─▶ Option<MfaRole>          (pure)
//!  provider:    held ─▶ cache file ─▶ source credentials ─▶ prompt (/dev/tty) ─▶ STS AssumeRole ─▶ cache file
//! ```
//!
//! As a ProxyCommand the broker runs once per ssh connection, so the role's credentials are kept in
//! a private [`cache`] file (the AWS CLI's format) until they are about to expire, and the code is
//! asked for only then, on `/dev/tty` ([`prompt`]): never on stdin or stdout, which are ssh's.

pub(crate) mod cache;
pub(crate) mod mfa_profile;
pub(crate) mod prompt;
pub(crate) mod provider;
pub(crate) mod sso;
pub(crate) mod sso_profile;

pub(crate) use mfa_profile::ProfileError;
pub(crate) use provider::MfaCredentialsProvider;
pub(crate) use sso::SsoError;

use aws_config::profile::ProfileSet;
use aws_types::os_shim_internal::{Env, Fs};

use crate::aws::AwsError;

/// The real AWS config and credentials files (`AWS_CONFIG_FILE`, `AWS_SHARED_CREDENTIALS_FILE`,
/// else `~/.aws/config` and `~/.aws/credentials`) as aws-config parses them, and the selected
/// profile's name ([`mfa_profile::selected_profile`]). `None` (with a debug log) when they cannot
/// be read or parsed: aws-config reports that in its own words.
pub(crate) async fn profiles(explicit_profile: Option<&str>) -> Option<(ProfileSet, String)> {
    let env = Env::real();
    let name = mfa_profile::selected_profile(explicit_profile, env.get("AWS_PROFILE").ok().as_deref());
    // The default files (`Default` of aws-runtime's EnvConfigFiles), as aws-config reads them.
    match aws_config::profile::load(&Fs::real(), &env, &Default::default(), None).await {
        Ok(profiles) => Some((profiles, name)),
        Err(e) => {
            tracing::debug!(error = %e, "AWS config files unreadable");
            None
        }
    }
}

/// Why an MFA role's credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MfaError {
    /// The profile names an MFA role in a way the broker cannot use.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A code is needed and there is no terminal (`/dev/tty`) to ask on.
    #[error(
        "profile {profile} needs an MFA code and there is no terminal to ask on: run `ec2-broker login --profile \
         {profile}` in a terminal first (the code is then cached until the role's credentials expire)"
    )]
    NoTerminal {
        /// The profile.
        profile: String,
    },
    /// The user typed something other than 6 digits, [`prompt::TRIES`] times.
    #[error("no valid MFA code for {serial} after {tries} tries: a code is 6 digits")]
    Malformed {
        /// The MFA device.
        serial: String,
        /// How many lines were read.
        tries: u32,
    },
    /// The terminal closed (end of file) before a code was typed.
    #[error("no MFA code for {serial}: the terminal closed")]
    NoCode {
        /// The MFA device.
        serial: String,
    },
    /// Reading or writing the terminal failed.
    #[error("asking for the MFA code on /dev/tty")]
    Terminal(#[source] std::io::Error),
    /// A signal (^C, hang-up) arrived while the code was being asked for.
    #[error("interrupted while asking for the MFA code")]
    Interrupted,
    /// The role's source credentials (`source_profile`, `credential_source`) are missing.
    #[error("no credentials for {origin}, the source of role {role_arn}: {detail}")]
    SourceCredentials {
        /// `profile base` or `the environment …`.
        origin: String,
        /// The role.
        role_arn: String,
        /// What aws-config said.
        detail: String,
    },
    /// STS refused the code.
    #[error("the MFA code was refused for {serial} (STS AssumeRole {role_arn}: {message}): try again")]
    CodeRefused {
        /// The MFA device.
        serial: String,
        /// The role.
        role_arn: String,
        /// STS's message.
        message: String,
    },
    /// AssumeRole failed for another reason.
    #[error("assuming role {role_arn}")]
    AssumeRole {
        /// The role.
        role_arn: String,
        /// The STS error.
        #[source]
        source: AwsError,
    },
    /// The credentials cache directory, a file or the lock in it cannot be used safely.
    #[error("the MFA credentials cache")]
    Cache(#[source] crate::cache::private_file::PrivateFileError),
    /// Another broker held the prompt for longer than [`prompt::PROMPT_WAIT`].
    #[error(
        "another ec2-broker has been asking for the MFA code for {serial} for {waited} s without an answer: answer it \
         there, or run `ec2-broker login` in a terminal first"
    )]
    PromptBusy {
        /// The MFA device.
        serial: String,
        /// How long this one waited, in seconds.
        waited: u64,
    },
    /// STS answered without credentials.
    #[error("STS AssumeRole {role_arn} returned no credentials")]
    NoCredentials {
        /// The role.
        role_arn: String,
    },
}
