//! Who signs the lab's requests: the lab's IAM user (the static [`crate::ACCESS_KEY_ID`]), the
//! session credentials the STS double's AssumeRole or the IAM Identity Center portal's
//! GetRoleCredentials issued (`ASIALAB…` keys, each with its role, session name and expiry), the
//! MFA device's current one-time code, and the Identity Center sign-ins (access tokens) the
//! portal accepts.
//!
//! The API doubles read the access key from the request's SigV4 `Credential=` and never verify
//! signatures (the EICE double does: `crate::eice`). Only keys AssumeRole issued expire; STS
//! refuses any key it does not know, the other doubles only expired issued ones.

use std::sync::Mutex;

use crate::state::lock;

/// The lab's IAM user name (its ARN: [`user_arn`]).
pub const USER_NAME: &str = "lab-user";
/// The lab user's unique id (GetCallerIdentity's `UserId` for [`crate::ACCESS_KEY_ID`]).
pub const USER_ID: &str = "AIDALABEXAMPLE0000001";
/// The MFA one-time code the lab accepts until `State::set_mfa_code` changes it.
pub const DEFAULT_MFA_CODE: &str = "123456";
/// What every issued access key id starts with (then a 13-digit counter: 20 characters).
pub const ISSUED_KEY_PREFIX: &str = "ASIALAB";
/// AssumeRole's `DurationSeconds` when the request has none.
pub const DEFAULT_SESSION_SECS: u64 = 3600;

/// `arn:aws:iam::<account>:user/lab-user`.
pub fn user_arn(account: &str) -> String {
    format!("arn:aws:iam::{account}:user/{USER_NAME}")
}

/// Session credentials AssumeRole issued (`State::assumed_roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    /// `ASIALAB` + 13 digits, unique.
    pub access_key_id: String,
    /// The secret key (the EICE double verifies presigned URLs with it).
    pub secret_access_key: String,
    /// The session token (`X-Amz-Security-Token`).
    pub session_token: String,
    /// The role's ARN (`RoleArn`).
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`.
    pub arn: String,
    /// `AROA…:<session name>`.
    pub assumed_role_id: String,
    /// The access key that signed the AssumeRole call.
    pub caller_key: String,
    /// Whether the call carried a valid MFA serial number and code.
    pub mfa: bool,
    /// Which API issued them.
    pub issuer: Issuer,
    /// Lab-clock time (Unix seconds) of the call.
    pub issued: u64,
    /// Lab-clock time (Unix seconds) from which the key is expired (`issued + DurationSeconds`).
    pub expires: u64,
}

/// The API that issued session credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// STS AssumeRole (`caller_key` signed the call).
    AssumeRole,
    /// The IAM Identity Center portal's GetRoleCredentials (a bearer token, no signing key:
    /// `caller_key` is empty).
    IdentityCenter,
    /// STS AssumeRoleWithWebIdentity (an unsigned call with an OIDC token: `caller_key` is
    /// empty).
    WebIdentity,
}

/// A bearer token the lab accepts until `expires`: an IAM Identity Center sign-in (the access
/// token `aws sso login` caches, sent as `x-amz-sso_bearer_token`) or an OIDC web identity token
/// (`AssumeRoleWithWebIdentity`'s `WebIdentityToken`).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// The token.
    pub access_token: String,
    /// Lab-clock time (Unix seconds) from which it is refused.
    pub expires: u64,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken").field("access_token", &"<redacted>").field("expires", &self.expires).finish()
    }
}

/// What the lab makes of a presented bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    /// Issued and not expired.
    Valid,
    /// Issued, past its expiry.
    Expired,
    /// Never issued.
    Unknown,
}

/// The kinds of bearer tokens the lab issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Identity Center access tokens.
    Sso,
    /// OIDC web identity tokens.
    WebIdentity,
}

/// A role session an issuer grants; the rest of the [`AssumedRole`] (a fresh `ASIALAB…` key,
/// secret and session token, the ARNs, the times) is the lab's (`State::grant`).
pub(crate) struct Grant<'a> {
    /// The role.
    pub(crate) role: &'a crate::inventory::RoleSpec,
    /// The session name (`RoleSessionName`, or Identity Center's user name).
    pub(crate) session: &'a str,
    /// The access key that signed the call (empty for bearer-token issuers).
    pub(crate) caller_key: &'a str,
    /// Whether the call proved MFA.
    pub(crate) mfa: bool,
    /// Who issues them.
    pub(crate) issuer: Issuer,
    /// How long they last, in seconds.
    pub(crate) duration: u64,
}

impl Grant<'_> {
    /// The credentials for `access_key_id`, issued at `now` in `account`.
    pub(crate) fn credentials(&self, access_key_id: String, account: &str, now: u64) -> AssumedRole {
        let (role, session) = (self.role, self.session);
        // The session token names its issuer, so a log line tells them apart.
        let tag = match self.issuer {
            Issuer::AssumeRole => "LAB",
            Issuer::IdentityCenter => "SSO",
            Issuer::WebIdentity => "WEB",
        };
        AssumedRole {
            access_key_id,
            secret_access_key: crate::base64::encode(&rand::random::<[u8; 30]>()),
            session_token: format!("IQoJb3JpZ2luX2Vj{tag}{}", crate::base64::encode(&rand::random::<[u8; 30]>())),
            role_arn: role.arn.clone(),
            session_name: session.to_string(),
            arn: format!("arn:aws:sts::{account}:assumed-role/{}/{session}", role.name()),
            assumed_role_id: format!("{}:{session}", role.role_id()),
            caller_key: self.caller_key.to_string(),
            mfa: self.mfa,
            issuer: self.issuer,
            issued: now,
            expires: now + self.duration,
        }
    }
}

/// Who a request's access key belongs to, at a lab-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// [`crate::ACCESS_KEY_ID`].
    User,
    /// An issued key, still valid.
    Role(AssumedRole),
    /// An issued key past its expiry.
    Expired(AssumedRole),
    /// Any other key (the lab's own tests sign with `lab`).
    Unknown,
}

/// Issued credentials, the MFA code and the Identity Center sign-ins.
#[derive(Debug)]
pub(crate) struct Registry {
    mfa_code: Mutex<String>,
    issued: Mutex<Vec<AssumedRole>>,
    tokens: Mutex<Vec<(TokenKind, BearerToken)>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { mfa_code: Mutex::new(DEFAULT_MFA_CODE.into()), issued: Mutex::default(), tokens: Mutex::default() }
    }
}

impl Registry {
    pub(crate) fn set_mfa_code(&self, code: &str) {
        *lock(&self.mfa_code) = code.into();
    }

    pub(crate) fn mfa_code(&self) -> String {
        lock(&self.mfa_code).clone()
    }

    /// Stores credentials made by `make` from a fresh access key id; returns them.
    pub(crate) fn issue(&self, make: impl FnOnce(String) -> AssumedRole) -> AssumedRole {
        let mut issued = lock(&self.issued);
        let role = make(format!("{ISSUED_KEY_PREFIX}{:013}", issued.len() + 1));
        issued.push(role.clone());
        role
    }

    /// What `issuer` issued, oldest first.
    pub(crate) fn issued_by(&self, issuer: Issuer) -> Vec<AssumedRole> {
        lock(&self.issued).iter().filter(|r| r.issuer == issuer).cloned().collect()
    }

    /// A new bearer token of `kind` valid until `expires` (lab-clock seconds): random, as hard
    /// to guess as the real ones (Identity Center's start `aoa`, OIDC's are JWTs: `eyJ`).
    pub(crate) fn issue_token(&self, kind: TokenKind, expires: u64) -> BearerToken {
        let prefix = match kind {
            TokenKind::Sso => "aoaLAB",
            TokenKind::WebIdentity => "eyJLAB",
        };
        let token = BearerToken {
            access_token: format!("{prefix}{}", crate::base64::encode(&rand::random::<[u8; 48]>())),
            expires,
        };
        lock(&self.tokens).push((kind, token.clone()));
        token
    }

    /// What `token` is, as a token of `kind`, at `now`.
    pub(crate) fn check_token(&self, kind: TokenKind, token: &str, now: u64) -> TokenCheck {
        let tokens = lock(&self.tokens);
        match tokens.iter().find(|(k, t)| *k == kind && t.access_token == token) {
            Some((_, t)) if now < t.expires => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    pub(crate) fn caller(&self, access_key: &str, now: u64) -> Caller {
        if access_key == crate::ACCESS_KEY_ID {
            return Caller::User;
        }
        match lock(&self.issued).iter().find(|r| r.access_key_id == access_key) {
            Some(r) if now < r.expires => Caller::Role(r.clone()),
            Some(r) => Caller::Expired(r.clone()),
            None => Caller::Unknown,
        }
    }
}

/// A stable IAM-style unique id: `prefix` and 17 base32 characters derived from `seed`
/// (`AROA…` for roles, `AIPA…` for instance profiles).
pub(crate) fn iam_id(prefix: &str, seed: &str) -> String {
    use sha2::Digest;
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let tail: String = digest[..17].iter().map(|b| ALPHABET[usize::from(b % 32)] as char).collect();
    format!("{prefix}{tail}")
}

/// The access key id and the scope's service of a SigV4 `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/20261123/eu-west-1/sts/aws4_request, SignedHeaders=…`);
/// empty strings for what it lacks.
pub(crate) fn credential(authorization: &str) -> (String, String) {
    let Some((_, rest)) = authorization.split_once("Credential=") else {
        return (String::new(), String::new());
    };
    let scope = rest.split([',', ' ']).next().unwrap_or_default();
    let mut parts = scope.split('/');
    let key = parts.next().unwrap_or_default().to_string();
    let service = parts.nth(2).unwrap_or_default().to_string();
    (key, service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_authorization_header() {
        let header = "AWS4-HMAC-SHA256 Credential=ASIALAB0000000000001/20261123/eu-west-1/sts/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=00";
        assert_eq!(credential(header), ("ASIALAB0000000000001".into(), "sts".into()));
        assert_eq!(credential("AWS4-HMAC-SHA256 Credential=lab"), ("lab".into(), String::new()));
        assert_eq!(credential("Bearer x"), (String::new(), String::new()));
    }

    #[test]
    fn iam_ids_are_stable_and_21_characters() {
        let id = iam_id("AROA", "arn:aws:iam::123456789012:role/lab-readonly");
        assert_eq!(id, iam_id("AROA", "arn:aws:iam::123456789012:role/lab-readonly"));
        assert_eq!(id.len(), 21);
        assert!(id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{id}");
        assert_ne!(id, iam_id("AROA", "arn:aws:iam::123456789012:role/lab-admin-mfa"));
    }
}
