//! Whether the selected profile is a role that needs an MFA code: `role_arn` + `mfa_serial` +
//! (`source_profile` or `credential_source = Environment`). [`mfa_role`] decides from parsed
//! profiles and does no I/O; [`load`] reads the standard files (`AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/config` and `~/.aws/credentials`).

use std::fmt;

use aws_config::profile::ProfileSet;

/// The range IAM accepts for `DurationSeconds` (15 minutes to 12 hours).
const DURATION_RANGE: std::ops::RangeInclusive<u32> = 900..=43_200;

/// A role assumed with an MFA code, as a profile describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MfaRole {
    /// The profile's name (`admin` for `[profile admin]`).
    pub profile: String,
    /// `role_arn`.
    pub role_arn: String,
    /// `mfa_serial`: the MFA device's ARN (or a hardware token's serial number).
    pub mfa_serial: String,
    /// Whose credentials call AssumeRole.
    pub source: RoleSource,
    /// `role_session_name`, if set.
    pub role_session_name: Option<String>,
    /// `duration_seconds`, if set.
    pub duration_seconds: Option<u32>,
    /// `external_id`, if set.
    pub external_id: Option<String>,
}

/// Where the credentials that call AssumeRole come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RoleSource {
    /// `source_profile = NAME`: that profile, through aws-config's chain.
    Profile(String),
    /// `credential_source = Environment`: `AWS_ACCESS_KEY_ID` and friends.
    Environment,
}

impl fmt::Display for RoleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleSource::Profile(p) => write!(f, "profile {p}"),
            RoleSource::Environment => f.write_str("the environment (credential_source = Environment)"),
        }
    }
}

/// A profile with `role_arn` and `mfa_serial` that the broker cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProfileError {
    /// Neither `source_profile` nor `credential_source`.
    #[error(
        "profile {profile} has role_arn and mfa_serial but no source_profile: add source_profile = NAME, the \
         profile with your long-term keys"
    )]
    NoSource {
        /// The profile.
        profile: String,
    },
    /// Both `source_profile` and `credential_source`.
    #[error("profile {profile} sets both source_profile and credential_source: keep one")]
    TwoSources {
        /// The profile.
        profile: String,
    },
    /// A `credential_source` other than `Environment`.
    #[error(
        "profile {profile}: credential_source = {value} is not supported with mfa_serial (only Environment): use \
         source_profile instead"
    )]
    UnsupportedCredentialSource {
        /// The profile.
        profile: String,
        /// What it says.
        value: String,
    },
    /// `source_profile` names a profile that is in neither file.
    #[error("profile {profile}: source_profile {source_profile} is not in the AWS config or credentials file")]
    MissingSource {
        /// The profile.
        profile: String,
        /// The missing one.
        source_profile: String,
    },
    /// `source_profile` names the profile itself, or another role that needs a code.
    #[error(
        "profile {profile}: source_profile {source_profile} {why}: name a profile that holds long-term keys (or \
         another way to sign in) instead"
    )]
    UnusableSource {
        /// The profile.
        profile: String,
        /// The source profile.
        source_profile: String,
        /// `is the profile itself` / `needs an MFA code too`.
        why: &'static str,
    },
    /// `duration_seconds` is not a number IAM accepts.
    #[error("profile {profile}: duration_seconds = {value} is not a number of seconds from 900 to 43200")]
    BadDuration {
        /// The profile.
        profile: String,
        /// What it says.
        value: String,
    },
}

/// The profile to use: `explicit` (`--profile`), else `AWS_PROFILE`, else `default`.
pub(crate) fn selected_profile(explicit: Option<&str>, aws_profile_var: Option<&str>) -> String {
    explicit.or(aws_profile_var).filter(|p| !p.is_empty()).unwrap_or("default").to_string()
}

/// Whether the broker, rather than aws-config's chain, provides credentials for `role`.
///
/// The standard chain takes `AWS_ACCESS_KEY_ID` before any profile, so those keys win over a
/// `source_profile` role, as they would without the broker; for `credential_source = Environment`
/// they are the role's source.
pub(crate) fn broker_provides(role: &MfaRole, access_key_in_env: bool) -> bool {
    match role.source {
        RoleSource::Profile(_) => !access_key_in_env,
        RoleSource::Environment => true,
    }
}

/// The MFA role `name` describes; `None` when it is not one (no such profile, no `role_arn`, or no
/// `mfa_serial`: aws-config handles those).
pub(crate) fn mfa_role(profiles: &ProfileSet, name: &str) -> Result<Option<MfaRole>, ProfileError> {
    let Some(profile) = profiles.get_profile(name) else { return Ok(None) };
    let get = |key: &str| profile.get(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    let (Some(role_arn), Some(mfa_serial)) = (get("role_arn"), get("mfa_serial")) else { return Ok(None) };
    let owner = || name.to_string();
    let source = match (get("source_profile"), get("credential_source")) {
        (Some(_), Some(_)) => return Err(ProfileError::TwoSources { profile: owner() }),
        (None, None) => return Err(ProfileError::NoSource { profile: owner() }),
        (None, Some(value)) if value == "Environment" => RoleSource::Environment,
        (None, Some(value)) => return Err(ProfileError::UnsupportedCredentialSource { profile: owner(), value }),
        (Some(source_profile), None) => {
            let unusable =
                |why| ProfileError::UnusableSource { profile: owner(), source_profile: source_profile.clone(), why };
            if source_profile == name {
                return Err(unusable("is the profile itself"));
            }
            let Some(source) = profiles.get_profile(&source_profile) else {
                return Err(ProfileError::MissingSource { profile: owner(), source_profile });
            };
            if source.get("role_arn").is_some() && source.get("mfa_serial").is_some() {
                return Err(unusable("needs an MFA code too"));
            }
            RoleSource::Profile(source_profile)
        }
    };
    let duration_seconds = match get("duration_seconds") {
        None => None,
        Some(value) => match value.parse::<u32>() {
            Ok(secs) if DURATION_RANGE.contains(&secs) => Some(secs),
            _ => return Err(ProfileError::BadDuration { profile: owner(), value }),
        },
    };
    Ok(Some(MfaRole {
        profile: owner(),
        role_arn,
        mfa_serial,
        source,
        role_session_name: get("role_session_name"),
        duration_seconds,
        external_id: get("external_id"),
    }))
}

/// Reads the real AWS config and credentials files and decides for the selected profile
/// ([`super::profiles`]). Files that cannot be read or parsed make `None`: aws-config reports
/// them in its own words.
pub(crate) async fn load(explicit_profile: Option<&str>) -> Result<Option<MfaRole>, ProfileError> {
    match super::profiles(explicit_profile).await {
        Some((profiles, name)) => mfa_role(&profiles, &name),
        None => Ok(None),
    }
}

#[cfg(test)]
impl MfaRole {
    /// The role the unit tests use: `admin`, MFA device `alice`, source profile `base`.
    pub(crate) fn example() -> MfaRole {
        MfaRole {
            profile: "admin".into(),
            role_arn: "arn:aws:iam::123456789012:role/lab-admin-mfa".into(),
            mfa_serial: "arn:aws:iam::123456789012:mfa/alice".into(),
            source: RoleSource::Profile("base".into()),
            role_session_name: None,
            duration_seconds: None,
            external_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_types::os_shim_internal::{Env, Fs};

    use super::*;

    const CREDENTIALS: &str = "[base]\naws_access_key_id = AKIA1\naws_secret_access_key = s\n";

    /// Parses `config` (and the credentials file above) with aws-config's own parser, in memory.
    fn profiles(config: &str) -> ProfileSet {
        let fs = Fs::from_slice(&[("/c/config", config), ("/c/credentials", CREDENTIALS)]);
        let env = Env::from_slice(&[
            ("HOME", "/nowhere"),
            ("AWS_CONFIG_FILE", "/c/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/c/credentials"),
        ]);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(aws_config::profile::load(&fs, &env, &Default::default(), None)).expect("parsing")
    }

    const ADMIN: &str = "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/lab-admin-mfa\n\
                         mfa_serial = arn:aws:iam::123456789012:mfa/alice\n";

    fn admin(source: RoleSource) -> MfaRole {
        MfaRole {
            profile: "admin".into(),
            role_arn: "arn:aws:iam::123456789012:role/lab-admin-mfa".into(),
            mfa_serial: "arn:aws:iam::123456789012:mfa/alice".into(),
            source,
            role_session_name: None,
            duration_seconds: None,
            external_id: None,
        }
    }

    #[test]
    fn decisions() {
        let base = || RoleSource::Profile("base".into());
        let full = MfaRole {
            role_session_name: Some("alice".into()),
            duration_seconds: Some(3600),
            external_id: Some("x-1".into()),
            ..admin(base())
        };
        type Want = Result<Option<MfaRole>, ProfileError>;
        let profile = || "admin".to_string();
        let cases: Vec<(&str, String, Want)> = vec![
            ("source_profile", format!("{ADMIN}source_profile = base\n"), Ok(Some(admin(base())))),
            (
                "all the options",
                format!(
                    "{ADMIN}source_profile = base\nrole_session_name = alice\nduration_seconds = 3600\nexternal_id = x-1\n"
                ),
                Ok(Some(full)),
            ),
            (
                "credential_source Environment",
                format!("{ADMIN}credential_source = Environment\n"),
                Ok(Some(admin(RoleSource::Environment))),
            ),
            ("no mfa_serial", "[profile admin]\nrole_arn = arn:r\nsource_profile = base\n".into(), Ok(None)),
            ("no role_arn", "[profile admin]\nmfa_serial = arn:m\nsource_profile = base\n".into(), Ok(None)),
            ("empty role_arn", "[profile admin]\nrole_arn =\nmfa_serial = arn:m\n".into(), Ok(None)),
            ("no such profile", "[profile other]\nregion = eu-west-1\n".into(), Ok(None)),
            ("not under [profile NAME]", format!("[admin]\nsource_profile = base\n{}", &ADMIN[16..]), Ok(None)),
            ("no source", ADMIN.into(), Err(ProfileError::NoSource { profile: profile() })),
            (
                "two sources",
                format!("{ADMIN}source_profile = base\ncredential_source = Environment\n"),
                Err(ProfileError::TwoSources { profile: profile() }),
            ),
            (
                "instance metadata source",
                format!("{ADMIN}credential_source = Ec2InstanceMetadata\n"),
                Err(ProfileError::UnsupportedCredentialSource {
                    profile: profile(),
                    value: "Ec2InstanceMetadata".into(),
                }),
            ),
            (
                "missing source profile",
                format!("{ADMIN}source_profile = nobody\n"),
                Err(ProfileError::MissingSource { profile: profile(), source_profile: "nobody".into() }),
            ),
            (
                "source is itself",
                format!("{ADMIN}source_profile = admin\n"),
                Err(ProfileError::UnusableSource {
                    profile: profile(),
                    source_profile: "admin".into(),
                    why: "is the profile itself",
                }),
            ),
            (
                "source needs MFA too",
                format!(
                    "{ADMIN}source_profile = mid\n[profile mid]\nrole_arn = arn:r\nmfa_serial = arn:m\nsource_profile = base\n"
                ),
                Err(ProfileError::UnusableSource {
                    profile: profile(),
                    source_profile: "mid".into(),
                    why: "needs an MFA code too",
                }),
            ),
            (
                "duration not a number",
                format!("{ADMIN}source_profile = base\nduration_seconds = 1h\n"),
                Err(ProfileError::BadDuration { profile: profile(), value: "1h".into() }),
            ),
            (
                "duration too short",
                format!("{ADMIN}source_profile = base\nduration_seconds = 899\n"),
                Err(ProfileError::BadDuration { profile: profile(), value: "899".into() }),
            ),
            (
                "duration too long",
                format!("{ADMIN}source_profile = base\nduration_seconds = 43201\n"),
                Err(ProfileError::BadDuration { profile: profile(), value: "43201".into() }),
            ),
        ];
        for (what, config, want) in cases {
            assert_eq!(mfa_role(&profiles(&config), "admin"), want, "{what}:\n{config}");
        }
    }

    #[test]
    fn chained_source_without_mfa_is_fine() {
        let config = format!("{ADMIN}source_profile = mid\n[profile mid]\nrole_arn = arn:r\nsource_profile = base\n");
        let role = mfa_role(&profiles(&config), "admin").unwrap().unwrap();
        assert_eq!(role.source, RoleSource::Profile("mid".into()));
    }

    #[test]
    fn profile_selection() {
        assert_eq!(selected_profile(Some("a"), Some("b")), "a");
        assert_eq!(selected_profile(None, Some("b")), "b");
        assert_eq!(selected_profile(None, None), "default");
        assert_eq!(selected_profile(None, Some("")), "default");
    }

    #[test]
    fn environment_keys_win_over_a_source_profile_only() {
        let by_profile = admin(RoleSource::Profile("base".into()));
        assert!(broker_provides(&by_profile, false));
        assert!(!broker_provides(&by_profile, true));
        let by_env = admin(RoleSource::Environment);
        assert!(broker_provides(&by_env, true));
        assert!(broker_provides(&by_env, false));
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = ProfileError::NoSource { profile: "admin".into() };
        assert!(e.to_string().contains("add source_profile = NAME"), "{e}");
    }
}
