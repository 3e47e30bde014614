//! The lab's inventory: the instances, key pairs, EC2 Instance Connect Endpoints, security
//! groups and IAM roles the doubles pretend exist (TOML), its checks (`check`), the names EC2
//! derives from addresses (`names`), instance profiles (`instance_profile`), and a generator of
//! large inventories for benchmarks (`generated`).

mod check;
mod generated;
mod instance_profile;
mod key_pair;
mod names;
mod network;
mod role;
mod security_group;
mod session_prefs;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Deserialize;
use sha2::Digest;

pub use instance_profile::{
    DEFAULT_INSTANCE_PROFILE_NAME, InstanceProfileSpec, NO_INSTANCE_PROFILE, instance_profile_id,
};
pub use key_pair::{KeyPairSpec, LAB_ADMIN_PRIVATE_KEY, LAB_ADMIN_PUBLIC_KEY};
pub use network::{LAB_VPC_CIDR, NatGatewaySpec, RouteSpec, RouteTableSpec, VpcEndpointSpec, internet_gateway_id};
pub use role::{RoleSpec, SSM_CORE_POLICY_ARN};
pub use security_group::{
    CLOSED_SECURITY_GROUP_ID, CLOSED_SECURITY_GROUP_NAME, IngressRule, OPEN_SECURITY_GROUP_ID,
    OPEN_SECURITY_GROUP_NAME, SecurityGroupSpec, implicit_security_groups,
};
pub use session_prefs::{KmsKeySpec, SessionPreferences};

use crate::console::ConsoleKeys;
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
    /// The EC2 Instance Connect Endpoints (`[[endpoint]]`).
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointSpec>,
    /// The account's key pairs (`[[key_pair]]`, DescribeKeyPairs).
    #[serde(default, rename = "key_pair")]
    pub key_pairs: Vec<KeyPairSpec>,
    /// The account's security groups (`[[security_group]]`) besides the two implicit ones
    /// ([`implicit_security_groups`]), which always exist.
    #[serde(default, rename = "security_group")]
    pub security_groups: Vec<SecurityGroupSpec>,
    /// The IAM roles the lab's user may assume (`[[role]]`, STS AssumeRole).
    #[serde(default, rename = "role")]
    pub roles: Vec<RoleSpec>,
    /// Instance profiles (`[[instance_profile]]`, IAM GetInstanceProfile) besides the implicit
    /// `lab-ssm` ([`Inventory::all_instance_profiles`]).
    #[serde(default, rename = "instance_profile")]
    pub instance_profiles: Vec<InstanceProfileSpec>,
    /// VPC endpoints (`[[vpc_endpoint]]`, DescribeVpcEndpoints).
    #[serde(default, rename = "vpc_endpoint")]
    pub vpc_endpoints: Vec<VpcEndpointSpec>,
    /// Route tables (`[[route_table]]`, DescribeRouteTables) besides the implicit main tables
    /// ([`Inventory::all_route_tables`]).
    #[serde(default, rename = "route_table")]
    pub route_tables: Vec<RouteTableSpec>,
    /// NAT gateways (`[[nat_gateway]]`, DescribeNatGateways).
    #[serde(default, rename = "nat_gateway")]
    pub nat_gateways: Vec<NatGatewaySpec>,
    /// Default Host Management Configuration: the role SSM GetServiceSetting reports for
    /// `/ssm/managed-instance/default-ec2-instance-management-role` (e.g.
    /// `service-role/AWSSystemsManagerDefaultEC2InstanceManagementRole`). Absent: `$None` (off).
    pub default_host_management_role: Option<String>,
    /// Run each running instance's sshd and IMDS double (default). `false`: nothing listens
    /// for any instance (no sshd, IMDS, SSM agent target), so an inventory of thousands of
    /// instances starts in well under a second; the API doubles still answer for all of them,
    /// and consoles print stand-in host keys derived from `seed`.
    #[serde(default = "yes")]
    pub serve_ssh: bool,
    /// Seeds the stand-in host keys of instances without an sshd (see `serve_ssh`), and the
    /// keys a tampered or mismatching console shows, so they are the same on every run.
    #[serde(default)]
    pub seed: u64,
    /// Serve the SSM data channel over TLS (`wss://`, certificate from the lab CA whose PEM is
    /// always written to `<lab dir>/lab-ca.pem`, which `AWS_CA_BUNDLE` names) instead of plain
    /// `ws://`. The EICE double always uses TLS.
    #[serde(default)]
    pub ssm_tls: bool,
    /// EC2 serial console access of the account in this Region (`EnableSerialConsoleAccess`,
    /// spec §2.3; off by default on AWS, on by default in the lab). `State::set_serial_access`
    /// overrides it at run time.
    #[serde(default = "yes")]
    pub serial_console_access: bool,
    /// The Session Manager preferences (`[session_preferences]`, the `SSM-SessionManagerRunShell`
    /// document); absent: never saved (defaults apply, GetDocument does not know it).
    pub session_preferences: Option<SessionPreferences>,
    /// The account's KMS keys (`[[kms_key]]`, the KMS double).
    #[serde(default, rename = "kms_key")]
    pub kms_keys: Vec<KmsKeySpec>,
}

/// One EC2 Instance Connect Endpoint (`../shared/spec/aws-apis.md` §2.3, §4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// `eice-…` (`^eice-[0-9a-zA-Z_]+$`, as the CLI validates it).
    pub id: String,
    /// The VPC it serves: it reaches the private IPv4 addresses of that VPC's instances.
    #[serde(default = "default_vpc")]
    pub vpc_id: String,
    /// The subnet its network interface is in.
    #[serde(default = "default_subnet")]
    pub subnet_id: String,
    /// Availability Zone of that subnet.
    #[serde(default = "default_az")]
    pub az: String,
    /// Lifecycle state: `create-complete` (default), `create-in-progress`, `update-complete`, …
    /// Tunnels open only in `create-complete`, `update-in-progress`, `update-complete` and
    /// `update-failed` (the states the CLI looks for).
    #[serde(default = "default_endpoint_state")]
    pub state: String,
    /// An IAM policy's cap on `ec2-instance-connect:maxTunnelDuration`, in seconds (1–3600).
    /// When set, a tunnel request must carry `maxTunnelDuration` no larger than this, or it is
    /// refused with 403 as IAM would.
    pub max_tunnel_duration_cap: Option<u64>,
    /// Concurrent tunnels the endpoint accepts (AWS: 20, spec §4.3).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The remote ports tunnels may reach; absent: any. (The 2023 service allowed only 22 and
    /// 3389; today's does not restrict, spec §4.3.)
    pub allowed_ports: Option<Vec<u16>>,
    /// `preserveClientIp` as DescribeInstanceConnectEndpoints reports it (not modelled further).
    #[serde(default)]
    pub preserve_client_ip: bool,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl EndpointSpec {
    /// `dnsName`: `<id>.<8 hex>.ec2-instance-connect-endpoint.<region>.amazonaws.com`, the
    /// 8 hex digits derived from the id (stable across runs).
    pub fn dns_name(&self, region: &str) -> String {
        format!("{}.{}.ec2-instance-connect-endpoint.{region}.amazonaws.com", self.id, self.dns_label())
    }

    /// `fipsDnsName`: as [`EndpointSpec::dns_name`] with `.fips.` before the service name.
    pub fn fips_dns_name(&self, region: &str) -> String {
        format!("{}.{}.fips.ec2-instance-connect-endpoint.{region}.amazonaws.com", self.id, self.dns_label())
    }

    /// `instanceConnectEndpointArn`.
    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:ec2:{region}:{account}:instance-connect-endpoint/{}", self.id)
    }

    /// Whether the state lets tunnels open (see [`EndpointSpec::state`]).
    pub fn usable(&self) -> bool {
        USABLE_ENDPOINT_STATES.contains(&self.state.as_str())
    }

    fn dns_label(&self) -> String {
        sha2::Sha256::digest(self.id.as_bytes())[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The endpoint states in which tunnels open (the CLI's filter, spec §4.4).
pub const USABLE_ENDPOINT_STATES: [&str; 4] =
    ["create-complete", "update-in-progress", "update-complete", "update-failed"];

/// Every endpoint state of the API model (spec §2.3).
const ENDPOINT_STATES: [&str; 9] = [
    "create-in-progress",
    "create-complete",
    "create-failed",
    "delete-in-progress",
    "delete-complete",
    "delete-failed",
    "update-in-progress",
    "update-complete",
    "update-failed",
];

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
    /// `running`, `stopped`, `pending`, `terminated` ... Only running instances get an sshd
    /// and listen on their addresses, so only they must have addresses of their own; stopped
    /// and terminated instances may share a running one's (EC2 recycles addresses).
    /// DescribeInstances reports the addresses the inventory gives, whatever the state: on AWS a
    /// terminated instance usually reports none (its network interface is gone), so leave them
    /// out to model that.
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
    /// What GetConsoleOutput returns (decoded), verbatim; when set, `console_keys` is not used.
    #[serde(default)]
    pub console_output: String,
    /// What the console output shows of the SSH host keys (`cloud-init`, `legacy`, `none`,
    /// `tampered`, `mismatch`, `cut`: see [`ConsoleKeys`]). Absent: `cloud-init` for running
    /// Linux instances, `none` for Windows and for instances that are not running.
    pub console_keys: Option<ConsoleKeys>,
    /// The key pair the instance was launched with (`keyName`). When the inventory has that
    /// key pair, its public key is in the instance's `authorized_keys`, as cloud-init puts it.
    pub key_name: Option<String>,
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
    /// The password every user of `os_users` has at the serial console's login prompt (spec §5.1:
    /// a shell over the serial console needs an OS user with a password). Absent: every serial
    /// login is refused with "Login incorrect".
    pub serial_password: Option<String>,
    /// Ids of the security groups the instance is in (`groupSet`; each a `[[security_group]]` or
    /// an implicit group). Absent: [`OPEN_SECURITY_GROUP_ID`] with `inbound = true`, else
    /// [`CLOSED_SECURITY_GROUP_ID`]. Reported only: `inbound` decides what listens.
    pub security_groups: Option<Vec<String>>,
    /// The instance profile's ARN (`arn:aws:iam::<account>:instance-profile/<name>`), or `none`.
    /// Absent: `…:instance-profile/lab-ssm` when the SSM agent is registered (`ssm` not `none`),
    /// else no profile.
    pub instance_profile: Option<String>,
    /// `MetadataOptions.HttpEndpoint`: `enabled` (default) or `disabled` (no instance metadata:
    /// the agent has no identity). Reported only.
    #[serde(default = "enabled")]
    pub metadata_endpoint: String,
    /// Whether the agent's Session Manager channel is up (SSM GetConnectionStatus `connected`,
    /// default) while it is online; `false`: `notconnected` although it pings.
    #[serde(default = "yes")]
    pub ssm_connected: bool,
    /// The AMI was shared from another account and cloud-init does not run on it: its
    /// `authorized_keys` holds only that account's key (the lab keeps its private half as
    /// `<lab dir>/<id>/ami_key`, `LAB_AMI_KEY`), not the launch key pair's
    /// (`keys-and-shell.md` §4, "shared AMI → server refused our key").
    #[serde(default)]
    pub shared_ami: bool,
}

impl InstanceSpec {
    /// The SSM agent status the inventory declares (see [`InstanceSpec::ssm`]).
    pub fn ssm_status(&self) -> SsmStatus {
        self.ssm.unwrap_or(if self.platform.is_none() { SsmStatus::Online } else { SsmStatus::None })
    }

    /// What the console shows of the host keys (see [`InstanceSpec::console_keys`]).
    pub fn console_keys(&self) -> ConsoleKeys {
        match self.console_keys {
            Some(kind) => kind,
            None if self.state == "running" && self.platform.is_none() => ConsoleKeys::CloudInit,
            None => ConsoleKeys::Absent,
        }
    }
}

impl Inventory {
    /// Parses TOML and checks it (see [`Inventory::check`]).
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let inv: Inventory = toml::from_str(text)?;
        inv.check()?;
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

    /// Looks a key pair up by name.
    pub fn key_pair(&self, name: &str) -> Option<&KeyPairSpec> {
        self.key_pairs.iter().find(|k| k.name == name)
    }

    /// Looks an Instance Connect Endpoint up by id.
    pub fn endpoint(&self, id: &str) -> Option<&EndpointSpec> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// Every security group: the two implicit ones, then the inventory's.
    pub fn all_security_groups(&self) -> impl Iterator<Item = &SecurityGroupSpec> {
        implicit_security_groups().iter().chain(&self.security_groups)
    }

    /// Looks a security group up by id (the implicit ones too).
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroupSpec> {
        self.all_security_groups().find(|g| g.id == id)
    }

    /// Looks a role up by ARN.
    pub fn role(&self, arn: &str) -> Option<&RoleSpec> {
        self.roles.iter().find(|r| r.arn == arn)
    }
}

/// The VPC instances, endpoints and security groups are in when the inventory names none.
pub const DEFAULT_VPC_ID: &str = "vpc-0123456789abcdef0";

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
serial_password = "lab-serial-pw"
key_name = "lab-admin"

[[instance]]
id = "i-0b1b2c3d4e5f60719"
name = "api-1"
tags = { Role = "api" }
az = "eu-west-1b"
private_ip = "127.0.1.11"
launch_time = "2026-11-20T09:05:00.000Z"
key_name = "lab-admin"

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
serial_password = "lab-serial-pw"

# In a VPC of its own, which has no Instance Connect Endpoint: direct and ssm reach it, eice not.
[[instance]]
id = "i-01a0b0c0d0e0f0123"
name = "iso-1"
private_ip = "127.0.1.16"
vpc_id = "vpc-0150a7ed000000001"
subnet_id = "subnet-0150a7ed000000001"
launch_time = "2026-11-22T08:00:00.000Z"

# The Instance Connect Endpoint of the instances' VPC (web-1, api-1, api-2, legacy-1, db-1, and
# the stopped batch-1).
[[endpoint]]
id = "eice-0e1c2e3d4f5a6b7c8"

# The key pair web-1 and api-1 were launched with (LAB_ADMIN_PUBLIC_KEY).
[[key_pair]]
name = "lab-admin"
public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINYty6T5SkXeQOkFfXnrzMghT3hM1xSvDhM9xqLNTjhH lab-admin"

# Roles the lab user may assume (STS AssumeRole). lab-admin-mfa's trust policy requires MFA: any
# device arn:aws:iam::123456789012:mfa/<name>, code State::mfa_code ("123456" unless changed).
[[role]]
arn = "arn:aws:iam::123456789012:role/lab-admin-mfa"
mfa = true

[[role]]
arn = "arn:aws:iam::123456789012:role/lab-readonly"
mfa = false
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
    DEFAULT_VPC_ID.into()
}
fn default_subnet() -> String {
    "subnet-0123456789abcdef0".into()
}
fn default_endpoint_state() -> String {
    "create-complete".into()
}
fn default_max_connections() -> usize {
    20
}
fn default_users() -> Vec<String> {
    vec!["ec2-user".into()]
}
fn default_agent_version() -> String {
    DEFAULT_AGENT_VERSION.into()
}
fn enabled() -> String {
    "enabled".into()
}
fn yes() -> bool {
    true
}
