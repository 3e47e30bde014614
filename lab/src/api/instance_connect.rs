//! EC2 Instance Connect double: `SendSSHPublicKey` and `SendSerialConsoleSSHPublicKey` with the
//! real validation and error codes (`../shared/spec/aws-apis.md` §2.1, §5.1). Keys pushed for
//! SSH are served by the instance's IMDS double; a serial push opens the instance's serial
//! console session (`crate::serial`).

use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Protocol, error, json, public_key};
use crate::serial::{SERIAL_PORT, session::SessionLimitExceeded};
use crate::state::State;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSshPublicKey {
    instance_id: Option<String>,
    #[serde(rename = "InstanceOSUser")]
    instance_os_user: Option<String>,
    #[serde(rename = "SSHPublicKey")]
    ssh_public_key: Option<String>,
    availability_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSerialConsoleSshPublicKey {
    instance_id: Option<String>,
    #[serde(rename = "SSHPublicKey")]
    ssh_public_key: Option<String>,
    serial_port: Option<i64>,
}

pub(super) fn handle(state: &State, operation: &str, body: &[u8]) -> Response {
    match operation {
        "SendSSHPublicKey" => send_ssh_public_key(state, body),
        "SendSerialConsoleSSHPublicKey" => send_serial_console_ssh_public_key(state, body),
        _ => error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("{operation} is not supported by the lab"),
        ),
    }
}

fn invalid(msg: &str) -> Response {
    error(Protocol::Json, StatusCode::BAD_REQUEST, "InvalidArgsException", msg)
}

fn send_ssh_public_key(state: &State, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<SendSshPublicKey>(body) else {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "could not parse the request body",
        );
    };
    let (Some(id), Some(user), Some(key)) = (req.instance_id, req.instance_os_user, req.ssh_public_key) else {
        return invalid("InstanceId, InstanceOSUser and SSHPublicKey are required");
    };
    if !valid_instance_id(&id) {
        return invalid(&format!("Invalid instance ID {id}"));
    }
    if !public_key::valid_os_user(&user) {
        return invalid(&format!("Invalid InstanceOSUser {user}"));
    }
    let key = match public_key::normalize(&key) {
        Ok(key) => key,
        Err(message) => return invalid(&message),
    };
    let Some(instance) = state.inventory.get(&id) else {
        return not_found(&id);
    };
    if let Some(az) = req.availability_zone.as_ref().filter(|az| **az != instance.az) {
        return invalid(&format!("Instance {id} is not in Availability Zone {az}"));
    }
    if instance.state != "running" {
        return state_invalid(&id);
    }
    let request_id = state.push_key(&id, &user, &key);
    json(StatusCode::OK, serde_json::json!({ "RequestId": request_id, "Success": true }))
}

/// Checks, in this order: the arguments, the account's serial console access, the instance, its
/// state, its type (spec §2.3's serial-capable rule), then the one-session rule (spec §5.1).
/// Success opens the instance's serial session with the key (see `crate::serial::session`).
fn send_serial_console_ssh_public_key(state: &State, body: &[u8]) -> Response {
    let Ok(req) = serde_json::from_slice::<SendSerialConsoleSshPublicKey>(body) else {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "could not parse the request body",
        );
    };
    if let Some(id) = req.instance_id.as_ref().filter(|id| !valid_instance_id(id)) {
        return invalid(&format!("Invalid instance ID {id}"));
    }
    let (Some(id), Some(key)) = (req.instance_id, req.ssh_public_key) else {
        return invalid("InstanceId and SSHPublicKey are required");
    };
    let key = match public_key::normalize(&key) {
        Ok(key) => key,
        Err(message) => return invalid(&message),
    };
    if req.serial_port.unwrap_or(0) != i64::from(SERIAL_PORT) {
        return invalid(&format!("Invalid serial port {}: only port 0 is supported", req.serial_port.unwrap_or(0)));
    }
    if !state.serial_access() {
        return error(
            Protocol::Json,
            StatusCode::FORBIDDEN,
            "SerialConsoleAccessDisabledException",
            "Serial console access is disabled for your account. Enable it with EnableSerialConsoleAccess.",
        );
    }
    let Some(instance) = state.inventory.get(&id) else {
        return not_found(&id);
    };
    if instance.state != "running" {
        return state_invalid(&id);
    }
    if !super::instance_types::serial_capable(state, &instance.instance_type) {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "EC2InstanceTypeInvalidException",
            "Only Nitro instance types are currently supported.",
        );
    }
    let teardown = state.serial_faults().teardown;
    if let Err(SessionLimitExceeded) = state.serial.push(&id, &key, state.now_millis(), Instant::now(), teardown) {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "SerialConsoleSessionLimitExceededException",
            "The instance currently has 1 active serial console session.",
        );
    }
    json(StatusCode::OK, serde_json::json!({ "RequestId": state.next_id(""), "Success": true }))
}

/// The model's `InstanceId` constraints: 10–32 characters, `^i-[a-f0-9]+$` (spec §2.1).
fn valid_instance_id(id: &str) -> bool {
    (10..=32).contains(&id.len())
        && id.starts_with("i-")
        && id[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn not_found(id: &str) -> Response {
    error(Protocol::Json, StatusCode::NOT_FOUND, "EC2InstanceNotFoundException", &format!("Instance {id} not found"))
}

fn state_invalid(id: &str) -> Response {
    error(
        Protocol::Json,
        StatusCode::BAD_REQUEST,
        "EC2InstanceStateInvalidException",
        &format!("Instance {id} is not in a valid state for this operation"),
    )
}
