//! IAM roles the lab's user may assume (`[[role]]`, the STS double's AssumeRole).

use serde::Deserialize;

/// One role (`[[role]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// `arn:aws:iam::<account>:role/<name>`, in the inventory's account (no path).
    pub arn: String,
    /// Whether the role's trust policy requires MFA (`aws:MultiFactorAuthPresent`): AssumeRole
    /// without `SerialNumber` and `TokenCode` is then refused with `AccessDenied`.
    #[serde(default)]
    pub mfa: bool,
}

impl RoleSpec {
    /// The role's name (what follows `role/`).
    pub fn name(&self) -> &str {
        self.arn.rsplit_once('/').map_or("", |(_, name)| name)
    }

    /// The role's unique id: `AROA` and 17 characters derived from the ARN (stable across runs).
    pub fn role_id(&self) -> String {
        crate::identity::iam_id("AROA", &self.arn)
    }
}

/// Whether `name` is a valid IAM role name (1–64 of `[A-Za-z0-9+=,.@_-]`).
pub(super) fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
