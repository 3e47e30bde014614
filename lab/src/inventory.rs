//! The lab's inventory: the instances the doubles pretend exist (TOML).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::ssm::{DEFAULT_AGENT_VERSION, SsmStatus};

/// The whole inventory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The Region the doubles answer for.
    #[serde(default = "default_region")]
    pub region: String,
    /// The account that owns the instances.
    #[serde(default = "default_account")]
    pub account: String,
    /// The instances.
    #[serde(default, rename = "instance")]
    pub instances: Vec<InstanceSpec>,
    /// Serve the SSM data channel over TLS (`wss://`, certificate from a lab CA whose PEM goes
    /// to `<lab dir>/lab-ca.pem` and `AWS_CA_BUNDLE`) instead of plain `ws://`.
    #[serde(default)]
    pub ssm_tls: bool,
}

/// One instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// `i-…` (hex).
    pub id: String,
    /// The `Name` tag.
    pub name: Option<String>,
    /// Other tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `running`, `stopped`, `pending`, `terminated` ...
    #[serde(default = "default_state")]
    pub state: String,
    /// Availability Zone.
    #[serde(default = "default_az")]
    pub az: String,
    /// Primary private IPv4 (a loopback address in the lab: 127.0.0.0/8).
    pub private_ip: Option<Ipv4Addr>,
    /// Public IPv4 (also loopback in the lab).
    pub public_ip: Option<Ipv4Addr>,
    /// `windows`, or absent on Linux (as the API sends it).
    pub platform: Option<String>,
    /// Instance type.
    #[serde(default = "default_type")]
    pub instance_type: String,
    /// Launch time, ISO 8601.
    #[serde(default = "default_launch")]
    pub launch_time: String,
    /// VPC id.
    #[serde(default = "default_vpc")]
    pub vpc_id: String,
    /// Subnet id.
    #[serde(default = "default_subnet")]
    pub subnet_id: String,
    /// OS users that exist on the instance (real accounts on this machine).
    #[serde(default = "default_users")]
    pub os_users: Vec<String>,
    /// Whether the EC2 Instance Connect package is installed (sshd gets the AuthorizedKeysCommand).
    #[serde(default = "yes")]
    pub instance_connect: bool,
    /// What GetConsoleOutput returns (decoded).
    #[serde(default)]
    pub console_output: String,
    /// The SSM agent: `online`, `connection_lost`, `inactive` or `none` (not registered).
    /// Absent: `online` on Linux, `none` on Windows (the lab's agent double speaks for Linux).
    pub ssm: Option<SsmStatus>,
    /// The `AgentVersion` the SSM agent reports and announces in its handshake.
    #[serde(default = "default_agent_version")]
    pub ssm_agent_version: String,
    /// Whether the instance accepts inbound connections. `false`: sshd does not listen on its
    /// addresses at all (a direct connection is refused); only its SSM agent reaches it.
    #[serde(default = "yes")]
    pub inbound: bool,
}

impl InstanceSpec {
    /// The SSM agent status the inventory declares (see [`InstanceSpec::ssm`]).
    pub fn ssm_status(&self) -> SsmStatus {
        self.ssm.unwrap_or(if self.platform.is_none() { SsmStatus::Online } else { SsmStatus::None })
    }
}

impl Inventory {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let inv: Inventory = toml::from_str(text)?;
        for i in &inv.instances {
            for ip in [i.private_ip, i.public_ip].into_iter().flatten() {
                anyhow::ensure!(
                    ip.is_loopback(),
                    "instance {}: address {ip} is not loopback: the lab only uses 127.0.0.0/8",
                    i.id
                );
            }
        }
        Ok(inv)
    }

    /// The inventory of the demo and most tests.
    pub fn demo() -> Self {
        Self::from_toml(DEMO).expect("the built-in inventory parses")
    }

    /// Looks an instance up by id.
    pub fn get(&self, id: &str) -> Option<&InstanceSpec> {
        self.instances.iter().find(|i| i.id == id)
    }
}

/// The built-in inventory.
pub const DEMO: &str = r#"
region = "eu-west-1"

[[instance]]
id = "i-0a1b2c3d4e5f60718"
name = "web-1"
tags = { Role = "web", Team = "shop" }
private_ip = "127.0.1.10"
public_ip = "127.0.2.10"
launch_time = "2026-11-20T09:00:00.000Z"

[[instance]]
id = "i-0b1b2c3d4e5f60719"
name = "api-1"
tags = { Role = "api" }
az = "eu-west-1b"
private_ip = "127.0.1.11"
launch_time = "2026-11-20T09:05:00.000Z"

[[instance]]
id = "i-0c1b2c3d4e5f6071a"
name = "api-2"
tags = { Role = "api" }
az = "eu-west-1c"
private_ip = "127.0.1.12"
launch_time = "2026-11-21T10:00:00.000Z"

[[instance]]
id = "i-0d1b2c3d4e5f6071b"
name = "batch-1"
state = "stopped"
private_ip = "127.0.1.13"

[[instance]]
id = "i-0e1b2c3d4e5f6071c"
name = "legacy-1"
instance_connect = false
private_ip = "127.0.1.14"

# No inbound network: reachable only through its SSM agent.
[[instance]]
id = "i-0f1b2c3d4e5f6071d"
name = "db-1"
tags = { Role = "db" }
private_ip = "127.0.1.15"
inbound = false
ssm = "online"
launch_time = "2026-11-22T07:30:00.000Z"
"#;

fn default_region() -> String {
    "eu-west-1".into()
}
fn default_account() -> String {
    "123456789012".into()
}
fn default_state() -> String {
    "running".into()
}
fn default_az() -> String {
    "eu-west-1a".into()
}
fn default_type() -> String {
    "t3.micro".into()
}
fn default_launch() -> String {
    "2026-11-01T08:00:00.000Z".into()
}
fn default_vpc() -> String {
    "vpc-0123456789abcdef0".into()
}
fn default_subnet() -> String {
    "subnet-0123456789abcdef0".into()
}
fn default_users() -> Vec<String> {
    vec!["ec2-user".into()]
}
fn default_agent_version() -> String {
    DEFAULT_AGENT_VERSION.into()
}
fn yes() -> bool {
    true
}
