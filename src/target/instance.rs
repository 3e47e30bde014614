//! `Instance`: our own view of an EC2 instance. SDK types stop at `aws/`; everything else sees this.

use std::fmt;
use std::net::Ipv4Addr;

use crate::text::printable;

/// The lifecycle state of an instance (`instanceState/name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum InstanceState {
    /// Booting; not reachable yet.
    Pending,
    /// Running: the only state the broker connects to.
    Running,
    /// Terminating.
    ShuttingDown,
    /// Gone (still listed for about an hour).
    Terminated,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// A state name this version does not know.
    Unknown,
}

impl InstanceState {
    /// Parses the API's state name.
    pub(crate) fn from_name(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            _ => Self::Unknown,
        }
    }

    /// The API's name for this state.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which address of the instance the direct route dials (`--address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// The primary private IPv4 address (needs a VPN, peering or a bastion-free network path).
    Private,
    /// The public IPv4 address.
    Public,
}

/// The instance has no address of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoAddress {
    /// No private IPv4 address.
    #[error("instance {0} has no private IPv4 address: try --address public")]
    Private(String),
    /// No public IPv4 address.
    #[error("instance {0} has no public IPv4 address: use --address private from inside its network, or another route")]
    Public(String),
}

/// The facts about one instance that route choice and messages need.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Instance {
    /// `i-…`.
    pub id: String,
    /// The `Name` tag, if set.
    pub name: Option<String>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Availability Zone (`eu-west-1a`).
    pub availability_zone: Option<String>,
    /// Primary private IPv4 address.
    pub private_ip: Option<Ipv4Addr>,
    /// Public IPv4 address.
    pub public_ip: Option<Ipv4Addr>,
    /// VPC id.
    pub vpc_id: Option<String>,
    /// Subnet id.
    pub subnet_id: Option<String>,
    /// `windows` for Windows instances, `None` on Linux.
    pub platform: Option<String>,
    /// Instance type (`t3.micro`): decides whether the serial console is available.
    pub instance_type: Option<String>,
    /// The key pair it was launched with (`KeyName`).
    pub key_name: Option<String>,
    /// Launch time as the API printed it (ISO 8601).
    pub launch_time: Option<String>,
    /// All tags, in API order.
    pub tags: Vec<(String, String)>,
    /// Its security groups' ids.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The ARN of its instance profile (the IAM role the SSM agent uses), if it has one.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// Instance metadata is off (`MetadataOptions.HttpEndpoint = disabled`).
    #[serde(default)]
    pub metadata_disabled: bool,
}

impl Instance {
    /// The address of `kind` the direct route dials (the one place that picks it).
    pub(crate) fn address(&self, kind: AddressKind) -> Result<Ipv4Addr, NoAddress> {
        match kind {
            AddressKind::Private => self.private_ip.ok_or_else(|| NoAddress::Private(self.id.clone())),
            AddressKind::Public => self.public_ip.ok_or_else(|| NoAddress::Public(self.id.clone())),
        }
    }

    /// A bare instance with only an id and a state; the other facts empty.
    pub(crate) fn new(id: impl Into<String>, state: InstanceState) -> Self {
        Instance {
            id: id.into(),
            name: None,
            state,
            availability_zone: None,
            private_ip: None,
            public_ip: None,
            vpc_id: None,
            subnet_id: None,
            platform: None,
            instance_type: None,
            key_name: None,
            launch_time: None,
            tags: Vec::new(),
            security_groups: Vec::new(),
            instance_profile: None,
            metadata_disabled: false,
        }
    }

    /// Whether this is a Windows instance (the API sends `windows` in lower case).
    pub(crate) fn is_windows(&self) -> bool {
        self.platform.as_deref().is_some_and(|p| p.eq_ignore_ascii_case("windows"))
    }

    /// `instance i-… (Name)` for messages (the Name made printable: whoever may tag the instance
    /// chose it).
    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("instance {} ({})", self.id, printable(n)),
            None => format!("instance {}", self.id),
        }
    }

    /// One line for candidate lists: id, Name, state, AZ, private IP, launch time.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} ({}, {}, {}, {}, launched {})",
            self.id,
            self.name.as_deref().map_or_else(|| "no Name".into(), |n| format!("Name={}", printable(n))),
            self.state,
            self.availability_zone.as_deref().unwrap_or("no AZ"),
            self.private_ip.map_or_else(|| "no private IP".into(), |ip| ip.to_string()),
            self.launch_time.as_deref().unwrap_or("?"),
        )
    }
}
