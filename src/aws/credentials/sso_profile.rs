//! Whether the selected profile signs in with IAM Identity Center (SSO), and what its cached
//! sign-in looks like. Pure: [`sign_in`] decides from parsed profiles, [`token_state`] from a
//! cache file's bytes and `now`. aws-config does the signing in; the broker only needs this to
//! explain a failure in words (`run aws sso login --profile P`).
//!
//! The token cache is the AWS CLI's: `~/.aws/sso/cache/<hex SHA-1 of key>.json`, where the key
//! is the `sso-session` section's name, or for a legacy profile (`sso_start_url` in the profile)
//! the start URL (aws-config `sso/cache.rs`, `cached_token_path`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_config::profile::ProfileSet;
use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
use sha1::{Digest, Sha1};

/// How many `source_profile` hops are followed to find the profile that signs in (aws-config
/// refuses loops; a real chain is one or two long).
const MAX_HOPS: usize = 8;

/// The profile whose Identity Center sign-in the selected profile's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SsoSignIn {
    /// The profile holding the SSO settings: the selected one, or the `source_profile` a role
    /// profile leads to. `aws sso login --profile` this one.
    pub profile: String,
    /// The token cache's key: the `sso-session` name, else the start URL.
    pub cache_key: String,
    /// `sso_account_id`, if set.
    pub account_id: Option<String>,
    /// `sso_role_name`, if set.
    pub role_name: Option<String>,
}

/// What the cached sign-in is, at some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenState {
    /// No cache file.
    Missing,
    /// The file says the token expired at this time (RFC 3339).
    Expired(String),
    /// The file exists but is not a token cache the SDK can read.
    Unreadable,
    /// A token that has not expired by the file's word.
    Current,
}

/// The Identity Center sign-in behind profile `name`: its own `sso_session` or
/// `sso_start_url`, or its `source_profile`'s (a role assumed with SSO credentials). `None` when
/// the credentials come from elsewhere.
pub(crate) fn sign_in(profiles: &ProfileSet, name: &str) -> Option<SsoSignIn> {
    let mut current = name.to_string();
    for _ in 0..MAX_HOPS {
        let profile = profiles.get_profile(&current)?;
        let get = |key: &str| profile.get(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        if let (Some(_), Some(source)) = (get("role_arn"), get("source_profile")) {
            if source == current {
                return None;
            }
            current = source;
            continue;
        }
        let cache_key = get("sso_session").or_else(|| get("sso_start_url"))?;
        return Some(SsoSignIn {
            profile: current,
            cache_key,
            account_id: get("sso_account_id"),
            role_name: get("sso_role_name"),
        });
    }
    None
}

/// `<home>/.aws/sso/cache/<hex SHA-1 of key>.json`.
pub(crate) fn cache_file(home: &Path, key: &str) -> PathBuf {
    let hex: String = Sha1::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    home.join(".aws").join("sso").join("cache").join(format!("{hex}.json"))
}

/// The one field the broker reads (the token itself is never read into memory here).
#[derive(serde::Deserialize)]
struct CachedToken {
    #[serde(rename = "expiresAt")]
    expires_at: String,
}

/// The state of a cached sign-in whose file read as `contents` (`None`: no such file) at `now`.
pub(crate) fn token_state(contents: Option<&[u8]>, now: SystemTime) -> TokenState {
    let Some(bytes) = contents else { return TokenState::Missing };
    let Ok(token) = serde_json::from_slice::<CachedToken>(bytes) else { return TokenState::Unreadable };
    let Ok(expires) = DateTime::from_str(&token.expires_at, DateTimeFormat::DateTime) else {
        return TokenState::Unreadable;
    };
    match SystemTime::try_from(expires) {
        Ok(at) if at > now => TokenState::Current,
        Ok(_) => TokenState::Expired(crate::text::clip(&crate::text::printable(&token.expires_at), 40).into_owned()),
        Err(_) => TokenState::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use aws_types::os_shim_internal::{Env, Fs};

    use super::*;

    fn profiles(config: &str) -> ProfileSet {
        let fs = Fs::from_slice(&[("/c/config", config)]);
        let env = Env::from_slice(&[("HOME", "/nowhere"), ("AWS_CONFIG_FILE", "/c/config")]);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(aws_config::profile::load(&fs, &env, &Default::default(), None)).expect("parsing")
    }

    const CONFIG: &str = "\
[profile legacy]
sso_start_url = https://d-1.awsapps.com/start
sso_region = eu-west-1
sso_account_id = 123456789012
sso_role_name = lab-readonly

[sso-session corp]
sso_start_url = https://d-2.awsapps.com/start
sso_region = eu-west-1

[profile modern]
sso_session = corp
sso_account_id = 123456789012
sso_role_name = lab-readonly

[profile admin]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = modern

[profile keys]
aws_access_key_id = AKIA1
aws_secret_access_key = s

[profile loop]
role_arn = arn:aws:iam::123456789012:role/admin
source_profile = loop

[profile process]
credential_process = /bin/creds
";

    #[test]
    fn which_profiles_sign_in_with_identity_center() {
        let set = profiles(CONFIG);
        let legacy = sign_in(&set, "legacy").unwrap();
        assert_eq!(legacy.profile, "legacy");
        assert_eq!(legacy.cache_key, "https://d-1.awsapps.com/start");
        assert_eq!(legacy.role_name.as_deref(), Some("lab-readonly"));
        let modern = sign_in(&set, "modern").unwrap();
        assert_eq!((modern.profile.as_str(), modern.cache_key.as_str()), ("modern", "corp"));
        // A role whose source signs in: the advice names the source profile.
        assert_eq!(sign_in(&set, "admin").unwrap(), modern);
        for other in ["keys", "loop", "process", "absent"] {
            assert_eq!(sign_in(&set, other), None, "{other}");
        }
    }

    #[test]
    fn cache_files_are_named_as_the_cli_names_them() {
        // `printf %s corp | sha1sum`
        assert_eq!(
            cache_file(Path::new("/h"), "corp"),
            Path::new("/h/.aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json")
        );
    }

    #[test]
    fn token_states() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15T08:00:00Z
        let file = |at: &str| format!(r#"{{"accessToken":"t","expiresAt":"{at}","region":"eu-west-1"}}"#);
        let cases: [(Option<String>, TokenState); 5] = [
            (None, TokenState::Missing),
            (Some(file("2027-01-15T09:00:00Z")), TokenState::Current),
            (Some(file("2027-01-15T08:00:00Z")), TokenState::Expired("2027-01-15T08:00:00Z".into())),
            (Some(file("yesterday")), TokenState::Unreadable),
            (Some("{\"accessToken\":\"t\"}".into()), TokenState::Unreadable),
        ];
        for (contents, want) in cases {
            assert_eq!(token_state(contents.as_deref().map(str::as_bytes), now), want, "{contents:?}");
        }
    }
}
