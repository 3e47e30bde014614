//! SSM: what the doctor reads about an agent beyond DescribeInstanceInformation
//! (`../shared/spec/keys-and-shell.md` §7 rows 3 and 6).

use super::{Aws, AwsError, clean};

const SERVICE: &str = "SSM";
/// Default Host Management Configuration's setting: the role SSM gives instances with no
/// instance profile, or `$None`.
const DHMC_SETTING: &str = "/ssm/managed-instance/default-ec2-instance-management-role";

impl Aws {
    /// Default Host Management Configuration's role (`None`: off, `$None`).
    pub(crate) async fn default_host_management_role(&self) -> Result<Option<String>, AwsError> {
        let out = self
            .ssm()
            .get_service_setting()
            .setting_id(DHMC_SETTING)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetServiceSetting", e))?;
        let value = out.service_setting().and_then(|s| s.setting_value()).unwrap_or("$None");
        Ok((!value.is_empty() && value != "$None").then(|| clean(value, 200)))
    }

    /// Whether Session Manager can reach the instance's agent now (GetConnectionStatus
    /// `connected`).
    pub(crate) async fn session_channel_connected(&self, instance_id: &str) -> Result<bool, AwsError> {
        let out = self
            .ssm()
            .get_connection_status()
            .target(instance_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetConnectionStatus", e))?;
        Ok(out.status().is_some_and(|s| s.as_str().eq_ignore_ascii_case("connected")))
    }
}
