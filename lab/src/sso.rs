//! IAM Identity Center sign-ins where the SDKs look for them: the AWS CLI's token cache,
//! `~/.aws/sso/cache/<key>.json`, whose name is the lower-case hex SHA-1 of the `sso-session`
//! section's name, or, for a legacy profile (`sso_start_url` in the profile itself), of the start
//! URL (aws-config's `sso/cache.rs`, `cached_token_path`). The tokens come from
//! [`crate::State::sso_sign_in`]; the portal double that accepts them is `api/sso.rs`.

use std::io;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::civil_time;
use crate::identity::BearerToken;

/// What `aws sso login` caches for one sign-in.
#[derive(Debug, Clone, Copy)]
pub struct CachedSignIn<'a> {
    /// The `sso-session` name, or the start URL of a legacy profile: the file is named after it.
    pub key: &'a str,
    /// `sso_start_url`.
    pub start_url: &'a str,
    /// `sso_region`.
    pub region: &'a str,
    /// The token and its expiry.
    pub token: &'a BearerToken,
}

/// `<home>/.aws/sso/cache/<sha1 hex of key>.json`.
pub fn cache_file(home: &Path, key: &str) -> PathBuf {
    let digest = Sha1::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    home.join(".aws/sso/cache").join(format!("{hex}.json"))
}

/// The cache file's text: `accessToken`, `expiresAt` (RFC 3339, UTC), `region`, `startUrl`.
/// (The CLI adds `clientId`, `clientSecret`, `registrationExpiresAt` and `refreshToken` for an
/// `sso-session`, which let the SDKs refresh the token through SSO OIDC; the lab has no OIDC
/// double, so its sign-ins cannot be refreshed.)
pub fn token_cache_json(sign_in: &CachedSignIn<'_>) -> String {
    serde_json::json!({
        "accessToken": sign_in.token.access_token,
        "expiresAt": civil_time::iso8601(sign_in.token.expires),
        "region": sign_in.region,
        "startUrl": sign_in.start_url,
    })
    .to_string()
}

/// Writes the cache file under `home` (creating its directories); returns its path.
pub fn write_token_cache(home: &Path, sign_in: &CachedSignIn<'_>) -> io::Result<PathBuf> {
    let file = cache_file(home, sign_in.key);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&file, token_cache_json(sign_in))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_the_sha1_of_the_session_name_or_start_url() {
        // `echo -n my-sso | sha1sum`, `echo -n https://d-abc123.awsapps.com/start | sha1sum`.
        assert_eq!(
            cache_file(Path::new("/h"), "my-sso"),
            Path::new("/h/.aws/sso/cache/0ad374308c5a4e22f723adf10145eafad7c4031c.json")
        );
        let legacy = cache_file(Path::new("/h"), "https://d-abc123.awsapps.com/start");
        assert_eq!(legacy.extension().unwrap(), "json");
        assert_eq!(legacy.file_stem().unwrap().len(), 40);
    }

    #[test]
    fn the_json_has_the_cli_fields() {
        let token = BearerToken { access_token: "tok".into(), expires: 1_800_000_000 };
        let sign_in = CachedSignIn { key: "s", start_url: "https://x/start", region: "eu-west-1", token: &token };
        let v: serde_json::Value = serde_json::from_str(&token_cache_json(&sign_in)).unwrap();
        assert_eq!(v["accessToken"], "tok");
        assert_eq!(v["expiresAt"], "2027-01-15T08:00:00Z");
        assert_eq!(v["region"], "eu-west-1");
        assert_eq!(v["startUrl"], "https://x/start");
    }
}
