//! Why an SSM agent is offline, from API evidence only (`../shared/spec/keys-and-shell.md` §7):
//! one finding per cause, each with its evidence and its fix, and the causes no API can see said
//! once. No I/O: [`crate::doctor::examine_agent`] gathers the evidence.

use super::{allow, denied_action};
use crate::aws::AwsError;
use crate::aws::iam::RolePolicies;
use crate::aws::network::{RouteTable, VpcEndpoint};
use crate::aws::security_groups::{Ingress, SecurityGroup};
use crate::aws::ssm::AgentStatus;
use crate::doctor::report::{Check, Verdict};
use crate::target::instance::Instance;

/// The row name of every finding about the agent.
const CHECK: &str = "agent";
/// The interface endpoints the agent needs in a VPC without internet access (spec §7 8a).
pub(crate) const AGENT_ENDPOINTS: [&str; 3] = ["ssm", "ssmmessages", "ec2messages"];
/// The AWS-managed policies that give the agent what it needs (AmazonSSMManagedInstanceCore,
/// its deprecated predecessor, and the policy Default Host Management's role carries).
const CORE_POLICIES: [&str; 3] = [
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    "arn:aws:iam::aws:policy/AmazonEC2RoleforSSM",
    "arn:aws:iam::aws:policy/AmazonSSMManagedEC2InstanceDefaultPolicy",
];
/// The actions of AmazonSSMManagedInstanceCore the agent cannot work without (spec §7 row 5).
pub(crate) const CORE_ACTIONS: [&str; 11] = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
];

/// An agent version, `3.0.222.0` as `[3, 0, 222, 0]`.
pub(crate) type Version = [u32; 4];

/// What an agent version must be for each feature (spec §7 row 4, from the agent's release
/// notes and the Session Manager prerequisites).
pub(crate) const FEATURES: [(&str, Version); 6] = [
    ("port sessions (ssh over Session Manager)", [3, 0, 222, 0]),
    ("KMS-encrypted sessions", [2, 3, 539, 0]),
    ("interactive commands", [2, 3, 668, 0]),
    ("IMDSv2", [2, 3, 814, 0]),
    ("non-interactive commands", [3, 0, 1124, 0]),
    ("Default Host Management", [3, 2, 582, 0]),
];
/// The first version with port sessions, which every route the broker opens needs.
pub(crate) const PORT_SESSIONS: Version = [3, 0, 222, 0];
/// The first version Default Host Management works with.
const DHMC_VERSION: Version = [3, 2, 582, 0];

/// Parses `3.0.222.0` (missing parts are 0; anything else is `None`).
pub(crate) fn parse_version(text: &str) -> Option<Version> {
    let mut out = [0u32; 4];
    let mut parts = text.trim().split('.');
    for slot in &mut out {
        match parts.next() {
            Some(p) => *slot = p.parse().ok()?,
            None => break,
        }
    }
    parts.next().is_none().then_some(out)
}

/// The features an agent of `version` lacks, with the version each needs.
pub(crate) fn missing_features(version: Version) -> Vec<(&'static str, Version)> {
    FEATURES.iter().filter(|(_, needed)| version < *needed).copied().collect()
}

fn show(v: Version) -> String {
    format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3])
}

/// A role of the instance profile, with what IAM said of it.
#[derive(Debug)]
pub(crate) struct RoleEvidence {
    /// The role's name.
    pub name: String,
    /// Its trust policy (`Ok(None)`: IAM sent none).
    pub trust: Result<Option<String>, AwsError>,
    /// Its policies.
    pub policies: Result<RolePolicies, AwsError>,
}

/// The network evidence: endpoints, the subnet's route table, NAT gateways, security groups.
#[derive(Debug, Default)]
pub(crate) struct NetworkEvidence {
    /// The VPC's endpoints.
    pub endpoints: Option<Result<Vec<VpcEndpoint>, AwsError>>,
    /// The subnet's route table, else the VPC's main one (`Ok(None)`: neither exists).
    pub route_table: Option<Result<Option<RouteTable>, AwsError>>,
    /// The state of each NAT gateway the table routes to (`Ok(None)`: EC2 does not know it).
    pub nat_states: Vec<(String, Result<Option<String>, AwsError>)>,
    /// The security groups of the instance and of the endpoints.
    pub groups: Option<Result<Vec<SecurityGroup>, AwsError>>,
}

/// Everything the doctor looked up about an agent that is not online (or that SSM cannot reach).
#[derive(Debug, Default)]
pub(crate) struct AgentEvidence {
    /// The instance profile's roles (`None`: no profile; `Ok(None)`: IAM does not know it).
    pub profile: Option<Result<Option<Vec<RoleEvidence>>, AwsError>>,
    /// Default Host Management's role (`None`: not looked up; `Ok(None)`: off, `$None`).
    pub dhmc: Option<Result<Option<String>, AwsError>>,
    /// The network.
    pub network: NetworkEvidence,
    /// GetConnectionStatus (`None`: not asked): `Ok(true)` connected.
    pub connected: Option<Result<bool, AwsError>>,
}

/// The facts the findings come from.
pub(crate) struct AgentFacts<'a> {
    /// The instance.
    pub instance: &'a Instance,
    /// DescribeInstanceInformation's answer.
    pub status: &'a Result<Option<AgentStatus>, AwsError>,
    /// What was looked up.
    pub evidence: &'a AgentEvidence,
    /// The host as the user wrote it (for commands in fixes).
    pub host: &'a str,
    /// The Region.
    pub region: &'a str,
}

/// Whether the doctor should look for causes: the agent is absent or not `Online`.
pub(crate) fn offline(status: &Result<Option<AgentStatus>, AwsError>) -> bool {
    matches!(status, Ok(None)) || matches!(status, Ok(Some(s)) if s.ping_status != "Online")
}

/// Whether the agent is online but too old for port sessions (the ssm route is then not tried).
pub(crate) fn too_old_for_ssh(status: &Result<Option<AgentStatus>, AwsError>) -> bool {
    let version = match status {
        Ok(Some(s)) => s.agent_version.as_deref().and_then(parse_version),
        _ => None,
    };
    version.is_some_and(|v| v < PORT_SESSIONS)
}

/// The findings, one row each; empty for a healthy agent.
pub(crate) fn findings(f: &AgentFacts<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let status = match f.status {
        Ok(s) => s.as_ref(),
        Err(_) => return out,
    };
    let id = &f.instance.id;
    if let Some(s) = status {
        if s.ping_status != "Online" {
            out.push(ping(s, id));
        }
        if let Some(check) = version(s, id) {
            out.push(check);
        }
    }
    if let Some(Ok(false)) = f.evidence.connected {
        out.push(
            Check::new(
                CHECK,
                Verdict::Fails,
                "the agent pings Systems Manager (Online), but Session Manager cannot reach it (GetConnectionStatus: notconnected)",
            )
            .fix(
                "sessions go over ssmmessages: check the ssmmessages VPC endpoint or the route to it, and that the \
                 instance's role allows ssmmessages:CreateControlChannel and ssmmessages:OpenControlChannel; then restart \
                 amazon-ssm-agent",
            ),
        );
    }
    let looked = offline(f.status) || matches!(f.evidence.connected, Some(Ok(false)));
    if !looked {
        return out;
    }
    out.extend(profile(f, status));
    if f.instance.metadata_disabled {
        out.push(
            Check::new(
                CHECK,
                Verdict::Fails,
                "instance metadata is off (MetadataOptions.HttpEndpoint = disabled): the agent has no identity and no credentials",
            )
            .fix(format!(
                "`aws ec2 modify-instance-metadata-options --instance-id {id} --http-endpoint enabled --region {}`",
                f.region
            )),
        );
    }
    out.extend(network(f));
    out.push(
        Check::new(
            CHECK,
            Verdict::Unknown,
            "what no API shows: the agent stopped or not installed, an OS firewall, an HTTPS proxy, DNS overrides, a full \
             disk, a clock far off",
        )
        .fix(format!(
            "look through the serial console: `ec2-broker console {}`, then `systemctl status amazon-ssm-agent` and \
             `journalctl -u amazon-ssm-agent`",
            f.host
        )),
    );
    out
}

fn ping(s: &AgentStatus, id: &str) -> Check {
    let since = s.last_ping.map_or("an unknown time".to_string(), |t| {
        crate::aws::credentials::provider::iso8601(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
        )
    });
    Check::new(
        CHECK,
        Verdict::Fails,
        format!("{}: the agent has not checked in since {since} (LastPingDateTime)", s.ping_status),
    )
    .fix(format!(
        "the instance, the agent or its network path stopped after it registered (it pings every 5 minutes): see \
             the findings below, then restart amazon-ssm-agent or reboot {id}"
    ))
}

fn version(s: &AgentStatus, id: &str) -> Option<Check> {
    let v = parse_version(s.agent_version.as_deref()?)?;
    if v >= PORT_SESSIONS {
        return None;
    }
    let lacks: Vec<String> =
        missing_features(v).iter().map(|(what, needs)| format!("{what} ({})", show(*needs))).collect();
    Some(
        Check::new(CHECK, Verdict::Fails, format!("agent {} is too old for ssh over Session Manager", show(v)))
            .and(format!("it lacks {}", lacks.join(", ")))
            .fix(format!(
                "update the agent: `aws ssm send-command --document-name AWS-UpdateSSMAgent --instance-ids {id}` (or \
                 reinstall amazon-ssm-agent from the serial console)"
            )),
    )
}

/// A row for a look-up that failed: which action to allow, or what failed.
fn not_looked(what: &str, e: &AwsError) -> Check {
    let c = Check::new(CHECK, Verdict::Unknown, format!("{what} could not be read: {e}"));
    match denied_action(e) {
        Some(action) => c.fix(allow(&action)),
        None => c,
    }
}

fn profile(f: &AgentFacts<'_>, status: Option<&AgentStatus>) -> Vec<Check> {
    let id = &f.instance.id;
    let Some(looked) = &f.evidence.profile else {
        return no_profile(f, status);
    };
    let name = profile_name(f.instance.instance_profile.as_deref().unwrap_or_default());
    let roles = match looked {
        Err(e) => return vec![not_looked(&format!("instance profile {name}"), e)],
        Ok(None) => {
            return vec![
                Check::new(
                    CHECK,
                    Verdict::Fails,
                    format!("instance profile {name} does not exist (IAM: NoSuchEntity)"),
                )
                .fix(format!(
                    "attach an existing profile whose role has AmazonSSMManagedInstanceCore: `aws ec2 \
                         replace-iam-instance-profile-association` (or associate-iam-instance-profile) for {id}"
                )),
            ];
        }
        Ok(Some(roles)) => roles,
    };
    if roles.is_empty() {
        return vec![Check::new(CHECK, Verdict::Fails, format!("instance profile {name} has no role")).fix(format!(
            "`aws iam add-role-to-instance-profile --instance-profile-name {name} --role-name ROLE` with a role that \
             has AmazonSSMManagedInstanceCore"
        ))];
    }
    let mut out = Vec::new();
    for role in roles {
        match &role.policies {
            Err(e) => out.push(not_looked(&format!("the policies of role {}", role.name), e)),
            Ok(p) => out.extend(policies(&role.name, p)),
        }
        match &role.trust {
            Err(e) => out.push(not_looked(&format!("the trust policy of role {}", role.name), e)),
            Ok(Some(doc)) if !trusts_ec2(doc) => out.push(
                Check::new(
                    CHECK,
                    Verdict::Fails,
                    format!("role {}'s trust policy does not let ec2.amazonaws.com assume it", role.name),
                )
                .fix(format!(
                    "`aws iam update-assume-role-policy --role-name {} --policy-document \
                     '{{\"Version\":\"2012-10-17\",\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"ec2.amazonaws.com\"}},\"Action\":\"sts:AssumeRole\"}}]}}'`",
                    role.name
                )),
            ),
            Ok(_) => {}
        }
    }
    out
}

fn no_profile(f: &AgentFacts<'_>, status: Option<&AgentStatus>) -> Vec<Check> {
    let id = &f.instance.id;
    let attach = format!(
        "attach an instance profile whose role has AmazonSSMManagedInstanceCore (`aws ec2 associate-iam-instance-profile \
         --instance-id {id} --iam-instance-profile Name=PROFILE`), or turn on Default Host Management (Systems Manager, \
         Fleet Manager, Account management)"
    );
    match &f.evidence.dhmc {
        Some(Ok(Some(role))) => {
            let old =
                status.and_then(|s| s.agent_version.as_deref()).and_then(parse_version).filter(|v| *v < DHMC_VERSION);
            match old {
                Some(v) => vec![
                    Check::new(
                        CHECK,
                        Verdict::Fails,
                        format!(
                            "no instance profile; Default Host Management gives role {role}, but agent {} is older than {}",
                            show(v),
                            show(DHMC_VERSION)
                        ),
                    )
                    .fix(format!("update the agent, or {attach}")),
                ],
                None => Vec::new(),
            }
        }
        Some(Ok(None)) => vec![
            Check::new(CHECK, Verdict::Fails, "no instance profile, and Default Host Management is off")
                .and("GetServiceSetting /ssm/managed-instance/default-ec2-instance-management-role: $None")
                .fix(attach),
        ],
        Some(Err(e)) => vec![
            Check::new(CHECK, Verdict::Fails, "no instance profile").fix(attach),
            not_looked("Default Host Management's setting", e),
        ],
        None => vec![Check::new(CHECK, Verdict::Fails, "no instance profile").fix(attach)],
    }
}

/// `arn:aws:iam::123:instance-profile/path/name` → `name`.
pub(crate) fn profile_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn policies(role: &str, p: &RolePolicies) -> Option<Check> {
    if p.attached.iter().any(|a| CORE_POLICIES.contains(&a.as_str())) {
        return None;
    }
    let missing = missing_actions(p.inline.iter().map(|(_, doc)| doc.as_str()));
    if missing.is_empty() {
        return None;
    }
    let attached = if p.attached.is_empty() { "none".to_string() } else { p.attached.join(", ") };
    let inline: Vec<&str> = p.inline.iter().map(|(n, _)| n.as_str()).collect();
    let inline = if inline.is_empty() { "none".to_string() } else { inline.join(", ") };
    let customer = p.attached.iter().any(|a| !a.starts_with("arn:aws:iam::aws:policy/"));
    let c = Check::new(
        CHECK,
        if customer { Verdict::Unknown } else { Verdict::Fails },
        format!("role {role} has neither AmazonSSMManagedInstanceCore nor a policy with the agent's actions"),
    )
    .and(format!("attached: {attached}; inline: {inline}"))
    .and(format!("missing: {}", missing.join(", ")));
    let c = if customer { c.and("the attached customer-managed policies were not read") } else { c };
    Some(c.fix(format!(
        "`aws iam attach-role-policy --role-name {role} --policy-arn arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore`"
    )))
}

/// The core actions no `Allow` statement of `documents` grants (wildcards honoured; `Deny`,
/// `NotAction` and conditions are not weighed).
pub(crate) fn missing_actions<'a>(documents: impl Iterator<Item = &'a str>) -> Vec<&'static str> {
    let granted: Vec<String> = documents
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .flat_map(|doc| statements(&doc))
        .filter(|s| s.get("Effect").and_then(|e| e.as_str()) == Some("Allow"))
        .flat_map(|s| strings(s.get("Action")))
        .collect();
    CORE_ACTIONS.iter().copied().filter(|action| !granted.iter().any(|g| action_matches(g, action))).collect()
}

/// Whether a trust policy lets `ec2.amazonaws.com` call `sts:AssumeRole`.
pub(crate) fn trusts_ec2(document: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else { return false };
    statements(&doc).iter().any(|s| {
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && strings(s.get("Action")).iter().any(|a| action_matches(a, "sts:AssumeRole"))
            && strings(s.get("Principal").and_then(|p| p.get("Service"))).iter().any(|p| p == "ec2.amazonaws.com")
    })
}

fn statements(doc: &serde_json::Value) -> Vec<serde_json::Value> {
    match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(s @ serde_json::Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// IAM action matching: case-insensitive, `*` and `?` wildcards.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), action.as_bytes())
}

mod network;
use network::network;

#[cfg(test)]
mod tests;
