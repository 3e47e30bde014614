//! Instance profiles (DescribeInstances' `iamInstanceProfile`): the inventory's
//! `instance_profile`, else the lab's default profile for instances with an SSM agent.

use super::InstanceSpec;
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
