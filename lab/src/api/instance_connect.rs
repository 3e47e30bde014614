//! EC2 Instance Connect double: `SendSSHPublicKey` with the real validation and error codes
//! (`../shared/spec/aws-apis.md` §2.1). Accepted keys are served by the instance's IMDS double.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::{Protocol, error, json};
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

pub(super) fn handle(state: &State, operation: &str, body: &[u8]) -> Response {
    match operation {
        "SendSSHPublicKey" => send_ssh_public_key(state, body),
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
    if !(10..=32).contains(&id.len())
        || !id.starts_with("i-")
        || !id[2..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return invalid(&format!("Invalid instance ID {id}"));
    }
    if !valid_os_user(&user) {
        return invalid(&format!("Invalid InstanceOSUser {user}"));
    }
    if !(80..=4096).contains(&key.len()) {
        return invalid("SSHPublicKey must be between 80 and 4096 characters");
    }
    if !(key.starts_with("ssh-ed25519 ") || key.starts_with("ssh-rsa ")) {
        return invalid("Unsupported key type: use an RSA or ED25519 key in OpenSSH format");
    }
    let Some(instance) = state.inventory.get(&id) else {
        return error(
            Protocol::Json,
            StatusCode::NOT_FOUND,
            "EC2InstanceNotFoundException",
            &format!("Instance {id} not found"),
        );
    };
    if let Some(az) = req.availability_zone.as_ref().filter(|az| **az != instance.az) {
        return invalid(&format!("Instance {id} is not in Availability Zone {az}"));
    }
    if instance.state != "running" {
        return error(
            Protocol::Json,
            StatusCode::BAD_REQUEST,
            "EC2InstanceStateInvalidException",
            &format!("Instance {id} is not in a valid state for this operation"),
        );
    }
    let request_id = state.push_key(&id, &user, &key);
    json(StatusCode::OK, serde_json::json!({ "RequestId": request_id, "Success": true }))
}

/// The model's pattern for `InstanceOSUser`, first alternative (spec §2.1).
fn valid_os_user(u: &str) -> bool {
    let b = u.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    (1..=32).contains(&b.len())
        && (first.is_ascii_alphabetic() || first == b'_')
        && rest.iter().enumerate().all(|(i, &c)| {
            let last = i == rest.len() - 1;
            c.is_ascii_alphanumeric() || matches!(c, b'@' | b'.' | b'_' | b'-') || (last && c == b'$')
        })
}
