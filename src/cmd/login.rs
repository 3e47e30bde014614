//! `ec2-broker login [--profile P] [--region R] [--force]`: assume the profile's MFA role now, with
//! a code typed on the terminal, and cache its credentials for the ProxyCommands that follow.
//! Everything it says goes to stderr.

use std::time::SystemTime;

use anyhow::bail;

use crate::aws::credentials::mfa_profile::{self, RoleSource};
use crate::aws::credentials::provider::iso8601;
use crate::aws::credentials::{MfaCredentialsProvider, MfaError};
use crate::cli::LoginArgs;

/// Runs `login`.
pub(crate) async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let profile = args.aws.profile.as_deref();
    let Some(role) = mfa_profile::load(profile).await.map_err(MfaError::from)? else {
        let name = mfa_profile::selected_profile(
            profile,
            std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()).as_deref(),
        );
        bail!(
            "profile {name} is not an MFA role profile (role_arn, mfa_serial and source_profile): there is nothing to \
             log in to, the broker uses its credentials as they are"
        );
    };
    if matches!(role.source, RoleSource::Profile(_))
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty())
    {
        eprintln!(
            "ec2-broker: note: AWS_ACCESS_KEY_ID is set, and those keys win over profile {}: unset it for connections to use the role",
            role.profile
        );
    }
    let provider = MfaCredentialsProvider::for_login(role, args.aws.region.as_deref()).await;
    let role = provider.role();
    if !args.force
        && let Some(cached) = provider.cached(SystemTime::now())
    {
        let until = cached.expiry().map_or_else(|| "(unknown)".into(), iso8601);
        eprintln!(
            "ec2-broker: credentials for role {} (profile {}) are cached until {until}; --force asks for a new code",
            role.role_arn, role.profile
        );
        return Ok(());
    }
    let credentials = provider.assume().await?;
    let until = credentials.expiry().map_or_else(|| "(unknown)".into(), iso8601);
    let place =
        provider.cache_file().map_or_else(|| "nowhere (no cache directory)".into(), |f| f.display().to_string());
    eprintln!(
        "ec2-broker: assumed role {} (profile {}) with the MFA code; its credentials are cached until {until} in {place}",
        role.role_arn, role.profile
    );
    Ok(())
}
