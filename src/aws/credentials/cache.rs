//! Cached role credentials: the key, the file format (the AWS CLI's, so the files read the same as
//! `~/.aws/cli/cache/*.json`) and freshness are pure; [`read()`] and [`write()`] are the only I/O.
//!
//! Files live in `<cache dir>/ec2-broker/credentials/KEY.json`, mode 0600 in a 0700 directory,
//! through [`crate::cache::private_file`]: a directory of another user or writable by others is
//! refused (an error naming it), and so is a file there that the broker cannot have written.
//! `KEY.lock` beside it is the lock that lets one broker at a time ask for the code
//! ([`super::prompt::PromptLock`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_sts::primitives::{DateTime, DateTimeFormat};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::mfa_profile::{MfaRole, RoleSource};
use crate::cache::private_file::{PrivateFileError, read_private, write_private};

/// Cached credentials are used only while they have more than this left: an API call, an
/// Instance Connect push and an SSM session start all fit well inside 5 minutes (the AWS CLI
/// refreshes 15 minutes early, but it also serves long-running scripts).
pub(crate) const MIN_REMAINING: Duration = Duration::from_secs(300);

/// The provider name the SDK sees on cached and fresh role credentials.
pub(crate) const PROVIDER_NAME: &str = "ec2-broker-mfa";

/// A cache file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// Not JSON of the expected shape.
    #[error("not a credentials cache file: {0}")]
    Json(#[from] serde_json::Error),
    /// `Expiration` is not an ISO 8601 date-time.
    #[error("Expiration {0:?} is not an ISO 8601 date-time")]
    Expiration(String),
    /// The credentials to store have no expiry or no session token.
    #[error("role credentials without {0} cannot be cached")]
    Incomplete(&'static str),
    /// The cache directory or file cannot be used safely, or writing failed.
    #[error(transparent)]
    File(#[from] PrivateFileError),
}

/// The `<cache dir>/ec2-broker/credentials` directory (`~/.cache/…` on Linux), if there is a home.
pub(crate) fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("ec2-broker").join("credentials"))
}

/// The file for `key` in `dir`.
pub(crate) fn file(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// The name of the lock file for `key` (held while a broker asks for the code).
pub(crate) fn lock_name(key: &str) -> String {
    format!("{key}.lock")
}

/// The cache key: hex SHA-1 of the canonical JSON (sorted keys, no spaces) of what decides the
/// credentials: `RoleArn`, `SerialNumber`, the source, and `RoleSessionName`, `DurationSeconds`,
/// `ExternalId` when set. As the AWS CLI keys its cache, plus the source.
pub(crate) fn key(role: &MfaRole) -> String {
    // serde_json's Map is a BTreeMap (no preserve_order feature): keys come out sorted.
    let mut fields = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| fields.insert(k.to_string(), v);
    put("RoleArn", role.role_arn.clone().into());
    put("SerialNumber", role.mfa_serial.clone().into());
    match &role.source {
        RoleSource::Profile(p) => put("SourceProfile", p.clone().into()),
        RoleSource::Environment => put("CredentialSource", "Environment".into()),
    };
    if let Some(name) = &role.role_session_name {
        put("RoleSessionName", name.clone().into());
    }
    if let Some(secs) = role.duration_seconds {
        put("DurationSeconds", secs.into());
    }
    if let Some(id) = &role.external_id {
        put("ExternalId", id.clone().into());
    }
    let canonical = serde_json::Value::Object(fields).to_string();
    Sha1::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether credentials expiring at `expiry` may still be used at `now` (more than
/// [`MIN_REMAINING`] left).
pub(crate) fn usable(expiry: SystemTime, now: SystemTime) -> bool {
    expiry.duration_since(now).is_ok_and(|left| left > MIN_REMAINING)
}

/// Reads a cache file's text (unknown fields, such as the AWS CLI's `AssumedRoleUser`, are ignored).
pub(crate) fn parse(text: &str) -> Result<Credentials, CacheError> {
    let file: CacheFile = serde_json::from_str(text)?;
    let c = file.credentials;
    let expiry = DateTime::from_str(&c.expiration, DateTimeFormat::DateTimeWithOffset)
        .ok()
        .and_then(|t| SystemTime::try_from(t).ok())
        .ok_or(CacheError::Expiration(c.expiration))?;
    Ok(Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), Some(expiry), PROVIDER_NAME))
}

/// The file text for role credentials (which always have a session token and an expiry).
pub(crate) fn serialize(credentials: &Credentials) -> Result<String, CacheError> {
    let expiry = credentials.expiry().ok_or(CacheError::Incomplete("an expiry"))?;
    let token = credentials.session_token().ok_or(CacheError::Incomplete("a session token"))?;
    let expiration =
        DateTime::from(expiry).fmt(DateTimeFormat::DateTime).map_err(|_| CacheError::Incomplete("a valid expiry"))?;
    let file = CacheFile {
        credentials: CachedCredentials {
            access_key_id: credentials.access_key_id().to_string(),
            secret_access_key: credentials.secret_access_key().to_string(),
            session_token: token.to_string(),
            expiration,
        },
    };
    Ok(serde_json::to_string_pretty(&file)?)
}

/// The credentials cached under `key`, if there is a file; a corrupt file is ignored, but a
/// directory or file that cannot be trusted is an error (naming it and what to do).
/// (Freshness is the caller's: see [`usable`].)
pub(crate) fn read(dir: &Path, key: &str) -> Result<Option<Credentials>, PrivateFileError> {
    let path = file(dir, key);
    let Some(text) = read_private(&path)? else { return Ok(None) };
    Ok(parse(&text)
        .inspect_err(
            |e| tracing::debug!(file = %path.display(), error = %e, "ignoring a corrupt credentials cache file"),
        )
        .ok())
}

/// Stores `credentials` under `key`, atomically, mode 0600; returns the file.
pub(crate) fn write(dir: &Path, key: &str, credentials: &Credentials) -> Result<PathBuf, CacheError> {
    let path = file(dir, key);
    let text = serialize(credentials)?;
    write_private(&path, &text)?;
    Ok(path)
}

/// The AWS CLI's cache file: `{"Credentials": {...}}` (it also stores `AssumedRoleUser`).
#[derive(Serialize, Deserialize)]
struct CacheFile {
    #[serde(rename = "Credentials")]
    credentials: CachedCredentials,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CachedCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    /// ISO 8601: the AWS CLI writes `2026-11-23T19:39:02+00:00`, STS and we write `…Z`.
    expiration: String,
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn role() -> MfaRole {
        MfaRole::example()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn creds(expiry: SystemTime) -> Credentials {
        Credentials::new("ASIALAB1", "secret", Some("token".into()), Some(expiry), PROVIDER_NAME)
    }

    #[test]
    fn key_is_stable_and_canonical() {
        // Pinned: SHA-1 of
        // {"RoleArn":"arn:aws:iam::123456789012:role/lab-admin-mfa","SerialNumber":"arn:aws:iam::123456789012:mfa/alice","SourceProfile":"base"}
        let canonical = r#"{"RoleArn":"arn:aws:iam::123456789012:role/lab-admin-mfa","SerialNumber":"arn:aws:iam::123456789012:mfa/alice","SourceProfile":"base"}"#;
        let expected: String = Sha1::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(key(&role()), expected);
        assert_eq!(key(&role()).len(), 40);
        // The profile's own name is not part of it: two profiles for the same role share credentials.
        assert_eq!(key(&MfaRole { profile: "other".into(), ..role() }), expected);
    }

    #[test]
    fn key_changes_with_what_decides_the_credentials() {
        let base = key(&role());
        let variants = [
            MfaRole { role_arn: "arn:aws:iam::123456789012:role/other".into(), ..role() },
            MfaRole { mfa_serial: "arn:aws:iam::123456789012:mfa/bob".into(), ..role() },
            MfaRole { source: RoleSource::Profile("base2".into()), ..role() },
            MfaRole { source: RoleSource::Environment, ..role() },
            MfaRole { role_session_name: Some("s".into()), ..role() },
            MfaRole { duration_seconds: Some(3600), ..role() },
            MfaRole { external_id: Some("x".into()), ..role() },
        ];
        let mut keys: Vec<String> = variants.iter().map(key).collect();
        keys.push(base);
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "every variant has its own key");
    }

    #[test]
    fn round_trip() {
        let c = creds(at(1_800_000_000));
        let text = serialize(&c).unwrap();
        assert!(text.contains(r#""Expiration": "2027-01-15T08:00:00Z""#), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(back.access_key_id(), "ASIALAB1");
        assert_eq!(back.secret_access_key(), "secret");
        assert_eq!(back.session_token(), Some("token"));
        assert_eq!(back.expiry(), Some(at(1_800_000_000)));
    }

    #[test]
    fn reads_the_aws_cli_format() {
        let text = r#"{"Credentials": {"AccessKeyId": "ASIA2", "SecretAccessKey": "s", "SessionToken": "t",
            "Expiration": "2027-01-15T08:00:00+00:00"}, "AssumedRoleUser": {"AssumedRoleId": "AROA:x",
            "Arn": "arn:aws:sts::123456789012:assumed-role/r/x"}, "ResponseMetadata": {}}"#;
        let c = parse(text).unwrap();
        assert_eq!(c.access_key_id(), "ASIA2");
        assert_eq!(c.expiry(), Some(at(1_800_000_000)));
        let offset = text.replace("08:00:00+00:00", "09:00:00+01:00");
        assert_eq!(parse(&offset).unwrap().expiry(), Some(at(1_800_000_000)));
    }

    #[test]
    fn corrupt_text_is_an_error() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"Credentials": {}}"#,
            r#"{"Credentials": {"AccessKeyId": "A", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "tomorrow"}}"#,
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn only_role_credentials_are_stored() {
        let no_expiry = Credentials::new("A", "s", Some("t".into()), None, PROVIDER_NAME);
        assert!(serialize(&no_expiry).is_err());
        let no_token = Credentials::new("A", "s", None, Some(at(1)), PROVIDER_NAME);
        assert!(serialize(&no_token).is_err());
    }

    #[test]
    fn freshness_edges() {
        let now = at(1_000_000);
        assert!(usable(now + MIN_REMAINING + Duration::from_secs(1), now));
        assert!(!usable(now + MIN_REMAINING, now), "exactly 5 minutes left is not enough");
        assert!(!usable(now + Duration::from_secs(1), now));
        assert!(!usable(now, now));
        assert!(!usable(now - Duration::from_secs(1), now), "expired");
        assert!(usable(now + Duration::from_secs(3600), now));
    }

    #[test]
    fn files_are_private_and_corrupt_ones_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ec2-broker/credentials");
        let k = key(&role());
        assert!(read(&dir, &k).unwrap().is_none(), "no file yet");
        let path = write(&dir, &k, &creds(at(1_800_000_000))).unwrap();
        assert_eq!(path, dir.join(format!("{k}.json")));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(read(&dir, &k).unwrap().unwrap().access_key_id(), "ASIALAB1");
        std::fs::write(&path, "{\"Credentials\": garbage").unwrap();
        assert!(read(&dir, &k).unwrap().is_none(), "a corrupt file reads as no cache");
    }

    /// See: issue 14. The old cache wrote through a predictable `KEY.tmp.PID` and read whatever
    /// was at `KEY.json`, in any directory.
    #[test]
    fn issue_14_planted_files_and_unsafe_directories_are_refused() {
        use std::os::unix::fs::symlink;

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ec2-broker/credentials");
        let k = key(&role());
        write(&dir, &k, &creds(at(1_800_000_000))).unwrap();

        // A planted symlink to someone else's credentials file: refused, naming the file.
        let planted = tmp.path().join("planted.json");
        std::fs::write(&planted, serialize(&creds(at(1_900_000_000))).unwrap()).unwrap();
        std::fs::remove_file(file(&dir, &k)).unwrap();
        symlink(&planted, file(&dir, &k)).unwrap();
        let e = read(&dir, &k).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} is a symbolic link: ec2-broker did not create it; remove it", file(&dir, &k).display())
        );
        // Writing replaces the link and leaves its target alone, even with a link at the old temp name.
        symlink(&planted, file(&dir, &k).with_extension(format!("tmp.{}", std::process::id()))).unwrap();
        let before = std::fs::read(&planted).unwrap();
        write(&dir, &k, &creds(at(1_800_000_000))).unwrap();
        assert_eq!(std::fs::read(&planted).unwrap(), before);
        assert!(read(&dir, &k).unwrap().is_some());

        // A directory others can write to.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read(&dir, &k).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("directory {0} is writable by other users (mode 0777): run chmod 700 {0}", dir.display())
        );
        assert!(write(&dir, &k, &creds(at(1_800_000_000))).is_err());

        // A directory of another user (tests run as root).
        if crate::cache::private_file::current_uid() == 0 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
            let e = read(&dir, &k).unwrap_err();
            assert!(e.to_string().contains("belongs to uid 65534, not to you"), "{e}");
        }
    }
}
