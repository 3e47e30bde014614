//! Instance profiles (DescribeInstances' `iamInstanceProfile`): the inventory's
//! `instance_profile`, else the lab's default profile for instances with an SSM agent; and the
//! profiles the IAM double knows (`[[instance_profile]]`, and the implicit `lab-ssm`).

use serde::Deserialize;

use super::role::{RoleSpec, SSM_CORE_POLICY_ARN};
use super::{InstanceSpec, Inventory};
use crate::ssm::SsmStatus;

/// The name of the profile instances get when their `instance_profile` is absent and their SSM
/// agent is registered (`ssm` is not `none`).
pub const DEFAULT_INSTANCE_PROFILE_NAME: &str = "lab-ssm";
/// The `instance_profile` value that means "no profile".
pub const NO_INSTANCE_PROFILE: &str = "none";

impl InstanceSpec {
    /// The instance profile's ARN: `instance_profile` as given (`none`: no profile); absent:
    /// `arn:aws:iam::<account>:instance-profile/lab-ssm` when the inventory's SSM status is not
    /// `none`, else no profile.
    pub fn instance_profile_arn(&self, account: &str) -> Option<String> {
        match self.instance_profile.as_deref() {
            Some(NO_INSTANCE_PROFILE) => None,
            Some(arn) => Some(arn.to_string()),
            None if self.ssm_status() == SsmStatus::None => None,
            None => Some(format!("arn:aws:iam::{account}:instance-profile/{DEFAULT_INSTANCE_PROFILE_NAME}")),
        }
    }
}

/// An instance profile's id (`iamInstanceProfile/id`): `AIPA` and 17 characters derived from
/// its ARN (stable across runs).
pub fn instance_profile_id(arn: &str) -> String {
    crate::identity::iam_id("AIPA", arn)
}

/// Whether `name` is a valid instance profile name (1–128 of `[A-Za-z0-9+=,.@_-]`).
pub(super) fn valid_profile_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// One instance profile (`[[instance_profile]]`, the IAM double's GetInstanceProfile).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceProfileSpec {
    /// Its name (the last segment of its ARN).
    pub name: String,
    /// The name of its role (a `[[role]]` of the account); absent: a profile with no role.
    pub role: Option<String>,
}

impl Inventory {
    /// The instance profiles the IAM double knows: the inventory's, and `lab-ssm` (role
    /// `lab-ssm`) unless the inventory declares one of that name.
    pub fn all_instance_profiles(&self) -> Vec<InstanceProfileSpec> {
        let mut out = self.instance_profiles.clone();
        if !out.iter().any(|p| p.name == DEFAULT_INSTANCE_PROFILE_NAME) {
            out.push(InstanceProfileSpec {
                name: DEFAULT_INSTANCE_PROFILE_NAME.into(),
                role: Some(DEFAULT_INSTANCE_PROFILE_NAME.into()),
            });
        }
        out
    }

    /// The roles the IAM double knows: the inventory's, and `lab-ssm` (trusted by
    /// ec2.amazonaws.com, AmazonSSMManagedInstanceCore attached) unless the inventory declares
    /// one of that name.
    pub fn all_roles(&self) -> Vec<RoleSpec> {
        let mut out = self.roles.clone();
        if !out.iter().any(|r| r.name() == DEFAULT_INSTANCE_PROFILE_NAME) {
            out.push(RoleSpec {
                arn: format!("arn:aws:iam::{}:role/{DEFAULT_INSTANCE_PROFILE_NAME}", self.account),
                mfa: false,
                managed_policies: vec![SSM_CORE_POLICY_ARN.into()],
                inline_policies: Default::default(),
                trusted_services: vec!["ec2.amazonaws.com".into()],
            });
        }
        out
    }
}
