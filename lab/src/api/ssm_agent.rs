//! SSM operations the doctor reads about an agent (`../shared/spec/keys-and-shell.md` §7 rows
//! 3 and 6, "What the lab double must reproduce" item 6): GetServiceSetting (Default Host
//! Management's role, `$None` when off) and GetConnectionStatus (`connected`/`notconnected`).
//! awsJson1_1, dispatched from `super::ssm`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Protocol, error, json};
use crate::ssm::SsmStatus;
use crate::state::State;

/// The Default Host Management Configuration setting.
pub(crate) const DHMC_SETTING: &str = "/ssm/managed-instance/default-ec2-instance-management-role";
/// What a setting nobody changed holds.
const NONE_VALUE: &str = "$None";
/// The other settings GetServiceSetting knows, with their defaults (SSM's `ServiceSetting`
/// reference).
const OTHER_SETTINGS: &[(&str, &str)] = &[
    ("/ssm/managed-instance/activation-tier", "standard"),
    ("/ssm/parameter-store/high-throughput-enabled", "false"),
    ("/ssm/parameter-store/default-parameter-tier", "Standard"),
    ("/ssm/opsinsights/opscenter", "Disabled"),
    ("/ssm/automation/customer-script-log-destination", "none"),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SettingInput {
    setting_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TargetInput {
    target: Option<String>,
}

fn validation(message: &str) -> Response {
    json(StatusCode::BAD_REQUEST, json!({ "__type": "ValidationException", "message": message }))
}

/// `GetServiceSetting`: `SettingId` by path or ARN; unknown: `ServiceSettingNotFound`.
pub(super) fn get_service_setting(state: &State, req: SettingInput) -> Response {
    let (region, account) = (&state.inventory.region, &state.inventory.account);
    let Some(id) = req.setting_id.filter(|s| !s.is_empty()) else {
        return validation(
            "1 validation error detected: Value null at 'settingId' failed to satisfy constraint: Member must not be null",
        );
    };
    if id.len() > 1000 {
        return validation(
            "1 validation error detected: Value at 'settingId' failed to satisfy constraint: Member must have length less than or equal to 1000",
        );
    }
    let arn_prefix = format!("arn:aws:ssm:{region}:{account}:servicesetting");
    let path = id.strip_prefix(&arn_prefix).unwrap_or(&id);
    let (value, customized) = if path == DHMC_SETTING {
        match &state.inventory.default_host_management_role {
            Some(role) => (role.clone(), true),
            None => (NONE_VALUE.to_string(), false),
        }
    } else if let Some((_, default)) = OTHER_SETTINGS.iter().find(|(p, _)| *p == path) {
        ((*default).to_string(), false)
    } else {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "ServiceSettingNotFound",
            &format!("ServiceSetting {id} is not found in account {account}"),
        );
    };
    json(
        StatusCode::OK,
        json!({ "ServiceSetting": {
            "SettingId": path,
            "SettingValue": value,
            "LastModifiedDate": 1_790_812_800,
            "LastModifiedUser": if customized { format!("arn:aws:iam::{account}:user/lab-admin") } else { "System".into() },
            "ARN": format!("{arn_prefix}{path}"),
            "Status": if customized { "Customized" } else { "Default" },
        }}),
    )
}

/// `GetConnectionStatus`: `connected` when the agent is online and its session channel is up
/// (the inventory's `ssm_connected`), else `notconnected` (also for targets SSM does not know).
pub(super) fn get_connection_status(state: &State, req: TargetInput) -> Response {
    let Some(target) = req.target.filter(|t| !t.is_empty()) else {
        return validation(
            "1 validation error detected: Value null at 'target' failed to satisfy constraint: Member must not be null",
        );
    };
    if target.len() > 400 {
        return validation(
            "1 validation error detected: Value at 'target' failed to satisfy constraint: Member must have length less than or equal to 400",
        );
    }
    let connected = state
        .inventory
        .get(&target)
        .is_some_and(|i| i.state == "running" && i.ssm_connected && state.ssm_status(&target) == SsmStatus::Online);
    json(StatusCode::OK, json!({ "Target": target, "Status": if connected { "connected" } else { "notconnected" } }))
}
