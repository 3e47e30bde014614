//! The serial console double end to end inside the lab: the push over HTTP (awsJson, as the SDK
//! sends it), then an in-test russh client against the endpoint: authentication, the getty, a
//! real login shell, and the session rules. Needs root and OpenSSH, like every test that
//! starts a `Lab`.
//!
//! - `client`: the in-test SSH client and a screen that waits for text;
//! - `console`: the getty and the login shell (with russh and with OpenSSH's `ssh`);
//! - `session`: authentication and the one-session-per-instance rules;
//! - `api`: the push's errors, GetSerialConsoleAccessStatus and DescribeInstanceTypes.

mod api;
mod client;
mod console;
mod session;

use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use serde_json::{Value, json};

use crate::test_world::{World, ec2, post};
use crate::{ApiCall, Inventory, Lab};

/// Every wait in these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(20);
const WEB: &str = "i-0a9000000000000a1";
const XEN: &str = "i-0b9000000000000b2";
const STOPPED: &str = "i-0c9000000000000c3";
const NO_PASSWORD: &str = "i-0d9000000000000d4";
const PASSWORD: &str = "serial-pw-9";

const INVENTORY: &str = r#"
[[instance]]
id = "i-0a9000000000000a1"
name = "serial-web"
private_ip = "127.0.9.10"
serial_password = "serial-pw-9"

[[instance]]
id = "i-0b9000000000000b2"
name = "serial-xen"
private_ip = "127.0.9.11"
instance_type = "t2.micro"
serial_password = "serial-pw-9"

[[instance]]
id = "i-0c9000000000000c3"
name = "serial-stopped"
state = "stopped"
private_ip = "127.0.9.12"

[[instance]]
id = "i-0d9000000000000d4"
private_ip = "127.0.9.13"
instance_type = "m5.metal"
"#;

fn world() -> World {
    let world = crate::test_world::start("serial", Inventory::from_toml(INVENTORY).unwrap());
    world.lab.state().set_serial_faults(|f| f.teardown = Duration::from_secs(2));
    world
}

/// `SendSerialConsoleSSHPublicKey` with `body`; returns the status and the JSON answer.
fn push_raw(lab: &Lab, body: Value) -> (u16, Value) {
    let headers = "Content-Type: application/x-amz-json-1.1\r\n\
                   X-Amz-Target: AWSEC2InstanceConnectService.SendSerialConsoleSSHPublicKey\r\n";
    let (status, body) = post(lab, headers, &body.to_string());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Pushes `key` for `instance`; returns the status and the error type (empty on success).
fn push(lab: &Lab, instance: &str, key: &PrivateKey) -> (u16, String) {
    let (status, body) = push_raw(lab, json!({"InstanceId": instance, "SSHPublicKey": openssh(key)}));
    if status == 200 {
        assert_eq!(body["Success"], true, "{body}");
        assert!(body["RequestId"].is_string(), "{body}");
    }
    (status, body["__type"].as_str().unwrap_or_default().to_string())
}

fn new_key() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

fn openssh(key: &PrivateKey) -> String {
    key.public_key().to_openssh().unwrap()
}

fn user(instance: &str) -> String {
    format!("{instance}.port0")
}

fn calls(lab: &Lab, status: u16) -> usize {
    let call = ApiCall {
        service: "ec2-instance-connect".into(),
        operation: "SendSerialConsoleSSHPublicKey".into(),
        status,
        access_key: crate::ACCESS_KEY_ID.into(),
    };
    lab.state().calls().iter().filter(|c| **c == call).count()
}
