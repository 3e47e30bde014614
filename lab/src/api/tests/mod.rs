//! The API doubles over HTTP as the SDK sends them: the EC2 doubles the known-hosts audit uses
//! (issue 6): GetConsoleOutput's host key blocks against each instance's real sshd keys,
//! DescribeInstances with recycled addresses and many-valued filters, DescribeKeyPairs, and a
//! generated lab of 10 000 instances; then STS, security groups and IAM denials. Needs root and
//! OpenSSH, like every test that starts a `Lab`.
//!
//! - `console`: each `console_keys` kind, checked with `ssh-keygen -l`, `ssh-keyscan` and `ssh`;
//! - `describe_instances`: terminated and stopped instances on recycled addresses, OR-ed
//!   filter values with pagination, the filter limits, DNS names and `keyName`;
//! - `key_pairs`: DescribeKeyPairs' fingerprints (checked with `ssh-keygen` and `openssl`);
//! - `generated`: `Inventory::generated` started without listeners;
//! - `sts`: AssumeRole (MFA, issued keys, expiry), GetCallerIdentity, STS errors;
//! - `security_groups`: `groupSet`, `iamInstanceProfile`, DescribeSecurityGroups;
//! - `iam`: `Faults::deny` in each protocol, and the access key of each logged call.

mod agent_evidence;
mod console;
mod describe_instances;
mod generated;
mod iam;
mod key_pairs;
mod run_command;
mod security_groups;
mod sts;

use crate::Inventory;
use crate::test_world::{World, ec2};

const WEB: &str = "i-0e7000000000000a1";
const LEGACY: &str = "i-0e7000000000000a2";
const TAMPERED: &str = "i-0e7000000000000a3";
const MISMATCH: &str = "i-0e7000000000000a4";
const CUT: &str = "i-0e7000000000000a5";
const REBOOTED: &str = "i-0e7000000000000a6";
const WINDOWS: &str = "i-0e7000000000000a7";
const OLD_WEB: &str = "i-0e7000000000000a8";
const STOPPED: &str = "i-0e7000000000000a9";

const INVENTORY: &str = r#"
region = "eu-west-1"

[[instance]]
id = "i-0e7000000000000a1"
name = "kh-web"
private_ip = "127.0.7.10"
public_ip = "127.0.8.10"
key_name = "lab-admin"
launch_time = "2026-11-20T09:00:00.000Z"

[[instance]]
id = "i-0e7000000000000a2"
name = "kh-legacy"
private_ip = "127.0.7.11"
console_keys = "legacy"

[[instance]]
id = "i-0e7000000000000a3"
name = "kh-tampered"
private_ip = "127.0.7.12"
console_keys = "tampered"

[[instance]]
id = "i-0e7000000000000a4"
name = "kh-mismatch"
private_ip = "127.0.7.13"
console_keys = "mismatch"

[[instance]]
id = "i-0e7000000000000a5"
name = "kh-cut"
private_ip = "127.0.7.14"
console_keys = "cut"

[[instance]]
id = "i-0e7000000000000a6"
name = "kh-rebooted"
private_ip = "127.0.7.15"
console_keys = "none"

[[instance]]
id = "i-0e7000000000000a7"
name = "kh-win"
private_ip = "127.0.7.16"
platform = "windows"

# Terminated on kh-web's recycled addresses; its console still shows its own first boot.
[[instance]]
id = "i-0e7000000000000a8"
name = "kh-web"
state = "terminated"
private_ip = "127.0.7.10"
public_ip = "127.0.8.10"
console_keys = "cloud-init"
launch_time = "2026-09-01T12:00:00.000Z"

# Stopped, on kh-legacy's private address.
[[instance]]
id = "i-0e7000000000000a9"
name = "kh-stopped"
state = "stopped"
private_ip = "127.0.7.11"

[[key_pair]]
name = "lab-admin"
public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin"
"#;

fn world() -> World {
    crate::test_world::start("known-hosts", Inventory::from_toml(INVENTORY).unwrap())
}

/// GetConsoleOutput for `id`, decoded.
fn console_text(w: &World, id: &str, latest: bool) -> String {
    let (status, xml) = ec2(&w.lab, &format!("Action=GetConsoleOutput&InstanceId={id}&Latest={latest}"));
    assert_eq!(status, 200, "{xml}");
    let output = element(&xml, "output").unwrap_or_default();
    let bytes = crate::base64::decode(output).unwrap_or_else(|| panic!("<output> is not base64: {xml}"));
    String::from_utf8(bytes).expect("the console text is UTF-8")
}

/// The text of the first `<name>` element of `xml`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..start + len])
}

/// Every instance item of a DescribeInstances answer, as `(instanceId, state code)`.
fn instances(xml: &str) -> Vec<(String, String)> {
    xml.split("<instancesSet><item>")
        .skip(1)
        .map(|item| {
            let id = element(item, "instanceId").unwrap_or_default().to_string();
            let code = element(item, "code").unwrap_or_default().to_string();
            (id, code)
        })
        .collect()
}
