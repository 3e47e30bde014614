//! Which routes look usable for an instance, from what the APIs say about it: a pure decider
//! over plain facts (nothing is opened; `doctor` is the command that tries).

use serde::Serialize;

use crate::target::instance::InstanceState;

/// What the APIs say that bears on the routes of one instance. `None` in an `Option` field means
/// the call that would tell was refused or failed (the route is then shown as unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteFacts {
    /// Lifecycle state (DescribeInstances).
    pub state: InstanceState,
    /// Windows (no Instance Connect key push).
    pub windows: bool,
    /// Has a primary private IPv4 address.
    pub private_ip: bool,
    /// Has a public IPv4 address.
    pub public_ip: bool,
    /// An Instance Connect Endpoint in a usable state serves its VPC
    /// (DescribeInstanceConnectEndpoints).
    pub endpoint_in_vpc: Option<bool>,
    /// The SSM agent's `PingStatus`; `Some(None)` when SSM does not know the instance
    /// (DescribeInstanceInformation).
    pub agent_ping: Option<Option<String>>,
    /// Serial console access is enabled for the account in the Region
    /// (GetSerialConsoleAccessStatus).
    pub serial_access: Option<bool>,
    /// Its instance type has a serial console: Nitro-based, or bare metal but for a few
    /// (DescribeInstanceTypes).
    pub serial_type: Option<bool>,
}

/// One route's verdict: `Some(true)` usable, `Some(false)` not, `None` unknown.
pub(crate) type Sign = Option<bool>;

/// The verdict for each route, in the order the ROUTES column lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct RouteSigns {
    /// EC2 Instance Connect can push a key (running Linux instance).
    pub push: Sign,
    /// The instance is running and has an address to dial.
    pub direct: Sign,
    /// An Instance Connect Endpoint serves its VPC and it has a private address.
    pub eice: Sign,
    /// Its SSM agent is `Online`.
    pub ssm: Sign,
    /// Serial console access is on and its type has a serial console.
    pub serial: Sign,
}

impl RouteSigns {
    /// `(name, sign)` in column order.
    pub(crate) fn named(&self) -> [(&'static str, Sign); 5] {
        [("push", self.push), ("direct", self.direct), ("eice", self.eice), ("ssm", self.ssm), ("serial", self.serial)]
    }

    /// The ROUTES column: usable routes by name, unknown ones with a `?`, `-` for none.
    pub(crate) fn column(&self) -> String {
        let words: Vec<String> = (self.named().into_iter())
            .filter_map(|(name, sign)| match sign {
                Some(true) => Some(name.to_string()),
                Some(false) => None,
                None => Some(format!("{name}?")),
            })
            .collect();
        if words.is_empty() { "-".into() } else { words.join(",") }
    }
}

/// Decides each route's verdict from the facts.
pub(crate) fn signs(f: &RouteFacts) -> RouteSigns {
    if f.state != InstanceState::Running {
        // Keys are pushed, sessions started and tunnels opened only to running instances.
        return RouteSigns {
            push: Some(false),
            direct: Some(false),
            eice: Some(false),
            ssm: Some(false),
            serial: Some(false),
        };
    }
    let eice = match (f.private_ip, f.endpoint_in_vpc) {
        (false, _) => Some(false),
        (true, known) => known,
    };
    let ssm = f.agent_ping.as_ref().map(|ping| ping.as_deref() == Some("Online"));
    let serial = match (f.serial_access, f.serial_type) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    };
    RouteSigns { push: Some(!f.windows), direct: Some(f.private_ip || f.public_ip), eice, ssm, serial }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> RouteFacts {
        RouteFacts {
            state: InstanceState::Running,
            windows: false,
            private_ip: true,
            public_ip: false,
            endpoint_in_vpc: Some(true),
            agent_ping: Some(Some("Online".into())),
            serial_access: Some(true),
            serial_type: Some(true),
        }
    }

    #[test]
    fn verdicts_follow_the_facts() {
        let cases: Vec<(&str, RouteFacts, &str)> = vec![
            ("everything", running(), "push,direct,eice,ssm,serial"),
            ("stopped", RouteFacts { state: InstanceState::Stopped, ..running() }, "-"),
            ("windows: no push", RouteFacts { windows: true, ..running() }, "direct,eice,ssm,serial"),
            ("no address: no direct, no eice", RouteFacts { private_ip: false, ..running() }, "push,ssm,serial"),
            ("public only", RouteFacts { private_ip: false, public_ip: true, ..running() }, "push,direct,ssm,serial"),
            ("no endpoint", RouteFacts { endpoint_in_vpc: Some(false), ..running() }, "push,direct,ssm,serial"),
            ("endpoints unknown", RouteFacts { endpoint_in_vpc: None, ..running() }, "push,direct,eice?,ssm,serial"),
            (
                "agent lost",
                RouteFacts { agent_ping: Some(Some("ConnectionLost".into())), ..running() },
                "push,direct,eice,serial",
            ),
            ("no agent", RouteFacts { agent_ping: Some(None), ..running() }, "push,direct,eice,serial"),
            ("agents unknown", RouteFacts { agent_ping: None, ..running() }, "push,direct,eice,ssm?,serial"),
            (
                "serial off",
                RouteFacts { serial_access: Some(false), serial_type: None, ..running() },
                "push,direct,eice,ssm",
            ),
            (
                "xen type",
                RouteFacts { serial_type: Some(false), serial_access: None, ..running() },
                "push,direct,eice,ssm",
            ),
            ("serial unknown", RouteFacts { serial_access: None, ..running() }, "push,direct,eice,ssm,serial?"),
        ];
        for (label, facts, want) in cases {
            assert_eq!(signs(&facts).column(), want, "{label}");
        }
    }
}
