//! IAM roles (`[[role]]`): those the lab's user may assume (the STS double's AssumeRole), and
//! the roles of instance profiles, with their policies and trust (the IAM double).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The AWS-managed policy an instance's role needs for the SSM agent.
pub const SSM_CORE_POLICY_ARN: &str = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore";

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
    /// The managed policies attached to it (`ListAttachedRolePolicies`), as ARNs: AWS-managed
    /// ones are `arn:aws:iam::aws:policy/<name>`.
    #[serde(default)]
    pub managed_policies: Vec<String>,
    /// Its inline policies (`ListRolePolicies`, `GetRolePolicy`): name → policy document (JSON).
    #[serde(default)]
    pub inline_policies: BTreeMap<String, String>,
    /// The services its trust policy lets assume it (`Principal.Service`, e.g.
    /// `ec2.amazonaws.com`). Empty: the account's principals (with MFA when `mfa`).
    #[serde(default)]
    pub trusted_services: Vec<String>,
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

    /// The trust policy (`AssumeRolePolicyDocument`, JSON, not yet URL-encoded).
    pub fn trust_policy(&self, account: &str) -> String {
        let statement = if self.trusted_services.is_empty() {
            let mut s = serde_json::json!({
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": "sts:AssumeRole",
            });
            if self.mfa {
                s["Condition"] = serde_json::json!({ "Bool": { "aws:MultiFactorAuthPresent": "true" } });
            }
            s
        } else {
            serde_json::json!({
                "Effect": "Allow",
                "Principal": { "Service": self.trusted_services },
                "Action": "sts:AssumeRole",
            })
        };
        serde_json::json!({ "Version": "2012-10-17", "Statement": [statement] }).to_string()
    }
}

/// Whether `name` is a valid IAM role name (1–64 of `[A-Za-z0-9+=,.@_-]`).
pub(super) fn valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
