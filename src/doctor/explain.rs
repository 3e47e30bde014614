//! From facts to verdicts: what each result means and what to do about it. No I/O: the facts
//! come from [`super::examine`], and every message is tested here.

use std::net::Ipv4Addr;

use super::report::{Check, Verdict};
use crate::aws::eice::Endpoint;
use crate::aws::security_groups::SecurityGroup;
use crate::aws::ssm::AgentStatus;
use crate::aws::{AwsError, ErrorKind};
use crate::route::Route;
use crate::route::error::RouteError;
use crate::target::instance::AddressKind;
use crate::target::instance::Instance;

/// The IAM action behind a failed call, when the service said the caller may not make it.
pub(crate) fn denied_action(e: &AwsError) -> Option<String> {
    let AwsError::Service { service, operation, .. } = e else { return None };
    let denied = e.kind() == ErrorKind::Denied;
    let prefix = match *service {
        "EC2" => "ec2",
        "EC2 Instance Connect" => "ec2-instance-connect",
        "SSM" => "ssm",
        "STS" => "sts",
        "IAM" => "iam",
        _ => return None,
    };
    denied.then(|| format!("{prefix}:{operation}"))
}

pub(crate) fn allow(action: &str) -> String {
    format!("allow {action} in the IAM policy of the identity you use (ask your AWS administrator)")
}

/// Whose credentials the broker uses.
pub(crate) fn credentials(identity: &Result<String, AwsError>) -> Check {
    match identity {
        Ok(arn) => Check::new("credentials", Verdict::Works, arn.clone()),
        Err(e) => {
            let fix = match e.kind() {
                ErrorKind::BadCredentials => {
                    "the access key is unknown or its secret is wrong: check the profile's keys (`aws configure list`)"
                }
                ErrorKind::Expired => {
                    "the session has expired: sign in again (`aws sso login`, or `ec2-broker login` for an MFA profile)"
                }
                ErrorKind::ClockSkew => "this machine's clock is more than 15 minutes off: set it right (NTP)",
                ErrorKind::Unreachable => {
                    "check the network path to AWS (and AWS_ENDPOINT_URL* if you set them) and the credentials"
                }
                _ => "check the profile (--profile, AWS_PROFILE) and its credentials",
            };
            Check::new("credentials", Verdict::Fails, e.to_string()).fix(fix)
        }
    }
}

/// The instance itself: found and running, with the facts the routes depend on.
pub(crate) fn instance(i: &Instance) -> Check {
    let ip = |a: Option<Ipv4Addr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
    let mut c = Check::new(
        "instance",
        Verdict::Works,
        format!(
            "{}: {}, {}, {}",
            i.label(),
            i.state,
            i.instance_type.as_deref().unwrap_or("type unknown"),
            i.availability_zone.as_deref().unwrap_or("AZ unknown")
        ),
    )
    .and(format!("private {}, public {}", ip(i.private_ip), ip(i.public_ip)))
    .and(format!("{} / {}", i.vpc_id.as_deref().unwrap_or("no VPC"), i.subnet_id.as_deref().unwrap_or("no subnet")))
    .and(format!(
        "security groups {}; instance profile {}",
        if i.security_groups.is_empty() { "none".to_string() } else { i.security_groups.join(", ") },
        i.instance_profile.as_deref().unwrap_or("none")
    ));
    if i.is_windows() {
        c = c.and("Windows: it needs an SSH server, and Instance Connect does not push keys to Windows");
    }
    c
}

/// The instance's state rules out every route.
pub(crate) fn not_running(message: &str) -> Check {
    Check::new("instance", Verdict::Fails, message.to_string())
}

/// A key file a killed broker left behind, and what the next connection does with it.
pub(crate) fn left_over_key(left: &crate::keys::file::LeftOver) -> String {
    let age = left.age.map_or("of unknown age".to_string(), |a| format!("{} s old", a.as_secs()));
    let next = match &left.replaced_because {
        None => format!(
            "the next connection reuses it (pushed again; within the key's {} s validity)",
            crate::keys::KEY_VALIDITY_SECS
        ),
        Some(why) => format!("the next connection replaces it with a fresh key: {why}"),
    };
    format!(
        "a key file left by an ended connection (its broker was killed) is at {} ({age}, no connection uses it): {next}",
        left.path.display()
    )
}

/// What the record of the last key pushed for this instance and user says (issue 19, bursts).
pub(crate) fn key_reuse(push: &crate::cache::pushes::Push, now: u64) -> String {
    use crate::cache::pushes::REUSE_SECS;
    let age = now.saturating_sub(push.pushed_at);
    let pushed = format!("pushed {age} s ago for {} over the {} route", push.user, push.route);
    let next = match age <= REUSE_SECS {
        true => format!("connections until {REUSE_SECS} s after the push reuse it"),
        false => "the next connection pushes a fresh one".to_string(),
    };
    match push.reused_at {
        Some(at) => format!(
            "the last connection reused a key pushed {} s earlier ({} connection{} reused it; {pushed}): {next}",
            at.saturating_sub(push.pushed_at),
            push.reuses,
            if push.reuses == 1 { "" } else { "s" },
        ),
        None => format!("no connection reused the last key yet ({pushed}): {next}"),
    }
}

/// The rows every route gets when the instance itself is out of reach.
pub(crate) fn all_routes(result: Verdict, why: &str) -> Vec<Check> {
    ["direct", "eice", "ssm", "serial", "key"].into_iter().map(|r| Check::new(r, result, why.to_string())).collect()
}

/// Facts about the direct route.
pub(crate) struct DirectFacts<'a> {
    /// The address kind the route dials (`--address`).
    pub kind: AddressKind,
    /// That address, if the instance has one.
    pub address: Option<Ipv4Addr>,
    /// The SSH port.
    pub port: u16,
    /// What connecting gave (`Ok`: sshd sent its identification; `None`: not tried).
    pub attempt: Option<&'a Result<(), RouteError>>,
    /// The instance's security groups (`None`: it has none, or they were not read).
    pub groups: Option<&'a Result<Vec<SecurityGroup>, AwsError>>,
}

/// The direct route.
pub(crate) fn direct(f: &DirectFacts<'_>) -> Check {
    let Some(ip) = f.address else {
        return match f.kind {
            AddressKind::Private => Check::new("direct", Verdict::Fails, "the instance has no private IPv4 address")
                .fix("use --address public, or another route"),
            AddressKind::Public => Check::new("direct", Verdict::Fails, "the instance has no public IPv4 address")
                .fix("use --address private from inside its network (VPN, peering), or another route"),
        };
    };
    let target = format!("{ip}:{}", f.port);
    let why = match f.attempt {
        Some(Ok(())) => return Check::new("direct", Verdict::Works, format!("{target}: sshd answered")),
        Some(Err(why)) => why,
        None => return Check::new("direct", Verdict::Unknown, format!("{target}: not tried")),
    };
    // The direct route's connect errors name the address already.
    let why = why.chain();
    let evidence = if f.attempt.is_some_and(|a| a.as_ref().is_err_and(RouteError::names_the_address)) {
        why
    } else {
        format!("{target}: {why}")
    };
    let check = Check::new("direct", Verdict::Fails, evidence);
    let path_hint = match f.kind {
        AddressKind::Private => {
            "a private address is reachable only from inside its VPC (or over a VPN, peering or Direct Connect)"
        }
        AddressKind::Public => "check network ACLs, the subnet's route to an internet gateway and the host firewall",
    };
    match f.groups {
        Some(Ok(groups)) => {
            let open: Vec<String> = groups
                .iter()
                .flat_map(|g| {
                    g.ingress
                        .iter()
                        .filter(|r| r.allows_tcp(f.port))
                        .map(move |r| format!("{} ({}) from {}", g.id, g.name, r.sources.join(", ")))
                })
                .collect();
            let names: Vec<String> = groups.iter().map(|g| format!("{} ({})", g.id, g.name)).collect();
            if open.is_empty() {
                check
                    .and(format!("no inbound rule of its security groups allows TCP {}: {}", f.port, names.join(", ")))
                    .fix(format!(
                        "add an inbound rule for TCP {} from your address to one of them, or use a route that needs \
                         no inbound network (eice, ssm)",
                        f.port
                    ))
            } else {
                check.and(format!("inbound TCP {} is allowed by {}", f.port, open.join("; "))).fix(format!(
                    "the security groups let it in: {path_hint}; is sshd listening on {}? Or use another route",
                    f.port
                ))
            }
        }
        Some(Err(e)) => {
            let c = check.and(format!("its security groups could not be read: {e}"));
            match denied_action(e) {
                Some(action) => c.fix(allow(&action)),
                None => c.fix(format!("{path_hint}, or use another route")),
            }
        }
        None => check.fix(format!("{path_hint}, or use another route")),
    }
}

/// Facts about the endpoint route.
pub(crate) struct EiceFacts<'a> {
    /// The instance's VPC and subnet (an endpoint needs both and a private address).
    pub vpc: Option<&'a str>,
    /// Its subnet.
    pub subnet: Option<&'a str>,
    /// Its private address.
    pub private_ip: Option<Ipv4Addr>,
    /// The SSH port.
    pub port: u16,
    /// Usable endpoints in the VPC (or the one `--eice-id` named).
    pub endpoints: &'a Result<Vec<Endpoint>, AwsError>,
    /// What opening a tunnel gave (`None`: not tried).
    pub attempt: Option<&'a Result<(), RouteError>>,
    /// The Region (for the commands in fixes).
    pub region: &'a str,
}

/// The Instance Connect Endpoint route.
pub(crate) fn eice(f: &EiceFacts<'_>) -> Check {
    let (Some(vpc), Some(ip)) = (f.vpc, f.private_ip) else {
        return Check::new("eice", Verdict::Fails, "the instance has no private address in a VPC")
            .fix("endpoints reach only VPC instances: use another route");
    };
    let endpoints = match f.endpoints {
        Ok(e) => e,
        Err(e) => {
            let c = Check::new("eice", Verdict::Unknown, format!("the endpoints could not be listed: {e}"));
            return match denied_action(e) {
                Some(action) => c.fix(allow(&action)),
                None => c,
            };
        }
    };
    let Some(endpoint) = endpoints.first() else {
        let subnet = f.subnet.unwrap_or("SUBNET");
        return Check::new("eice", Verdict::Fails, format!("no usable Instance Connect Endpoint in {vpc}")).fix(
            format!(
                "create one: `aws ec2 create-instance-connect-endpoint --subnet-id {subnet} --region {}`, and let its \
             security group reach TCP {} on the instance",
                f.region, f.port
            ),
        );
    };
    match f.attempt {
        Some(Ok(())) => Check::new(
            "eice",
            Verdict::Works,
            format!("{} opened a tunnel to {ip}:{}: sshd answered", endpoint.id, f.port),
        ),
        Some(Err(why)) => {
            let c = Check::new("eice", Verdict::Fails, format!("{}: {}", endpoint.id, why.chain()));
            if why.sshd_unreached() {
                c.fix(format!(
                    "the endpoint could not reach {ip}:{}: allow TCP {} from the endpoint's security group in the \
                     instance's security groups, and check that sshd listens",
                    f.port, f.port
                ))
            } else {
                c
            }
        }
        None => Check::new("eice", Verdict::Unknown, format!("{} exists; no tunnel was tried", endpoint.id)),
    }
}

/// Facts about the Session Manager route.
pub(crate) struct SsmFacts<'a> {
    /// DescribeInstanceInformation's answer (`Ok(None)`: not registered).
    pub status: &'a Result<Option<AgentStatus>, AwsError>,
    /// The instance profile's ARN.
    pub instance_profile: Option<&'a str>,
    /// The SSH port.
    pub port: u16,
    /// What opening a session gave (`None`: not tried).
    pub attempt: Option<&'a Result<(), RouteError>>,
}

const SSM_NETWORK: &str = "the agent needs outbound HTTPS to the ssm, ssmmessages and ec2messages endpoints (or VPC \
                           interface endpoints for them)";

/// The Session Manager route.
pub(crate) fn ssm(f: &SsmFacts<'_>) -> Check {
    let profile = match f.instance_profile {
        Some(arn) => format!("instance profile {arn}"),
        None => "no instance profile".to_string(),
    };
    let agent = match f.status {
        Ok(None) => {
            let c =
                Check::new("ssm", Verdict::Fails, "the instance is not registered with Systems Manager").and(profile);
            return match f.instance_profile {
                None => c.fix(format!(
                    "attach an instance profile whose role has the AmazonSSMManagedInstanceCore policy (or turn on \
                     Default Host Management); {SSM_NETWORK}"
                )),
                Some(_) => c.fix(format!(
                    "check that the profile's role has AmazonSSMManagedInstanceCore, that amazon-ssm-agent is \
                     installed and running, and that {SSM_NETWORK}"
                )),
            };
        }
        Ok(Some(s)) if s.ping_status != "Online" => {
            return Check::new(
                "ssm",
                Verdict::Fails,
                format!(
                    "the SSM agent ({}) is {}",
                    s.agent_version.as_deref().unwrap_or("version unknown"),
                    s.ping_status
                ),
            )
            .and(profile)
            .fix(format!(
                "the agent has lost touch with Systems Manager: check that the instance is healthy and {SSM_NETWORK}; \
                 restart amazon-ssm-agent"
            ));
        }
        Ok(Some(s)) => format!("SSM agent {} online", s.agent_version.as_deref().unwrap_or("(version unknown)")),
        Err(e) => format!("the agent's status could not be read: {e}"),
    };
    match f.attempt {
        Some(Ok(())) => {
            Check::new("ssm", Verdict::Works, format!("{agent}; a session to port {} reached sshd", f.port))
        }
        Some(Err(why)) => {
            let c = Check::new("ssm", Verdict::Fails, why.chain()).and(agent);
            if why.aws().is_some_and(|e| e.kind() == ErrorKind::Denied) {
                c.fix(
                    "allow ssm:StartSession on the instance and on the AWS-StartSSHSession document (and \
                       ssm:TerminateSession, ssm:ResumeSession on your sessions)",
                )
            } else {
                c
            }
        }
        None if agent::too_old_for_ssh(f.status) => {
            Check::new("ssm", Verdict::Fails, format!("{agent}, but too old for port sessions (3.0.222.0): not tried"))
                .and(profile)
        }
        None => Check::new("ssm", Verdict::Unknown, agent).and(profile),
    }
}

/// Facts about the serial console.
pub(crate) struct SerialFacts<'a> {
    /// GetSerialConsoleAccessStatus: enabled, or the call's error.
    pub access: &'a Result<bool, AwsError>,
    /// Why the instance type cannot (`Ok(None)`: it can; `Err`: the type could not be read).
    pub type_problem: &'a Result<Option<String>, AwsError>,
    /// The Region.
    pub region: &'a str,
    /// The host as the user wrote it (for the command to run).
    pub host: &'a str,
}

/// The serial console: prerequisites only; a session would hold the console for everyone.
pub(crate) fn serial(f: &SerialFacts<'_>) -> Check {
    match f.access {
        Ok(false) => {
            return Check::new(
                "serial",
                Verdict::Fails,
                format!("serial console access is disabled for this account in {}", f.region),
            )
            .fix(format!(
                "`aws ec2 enable-serial-console-access --region {}` (needs ec2:EnableSerialConsoleAccess)",
                f.region
            ));
        }
        Ok(true) => {}
        Err(e) => {
            let c = Check::new("serial", Verdict::Unknown, format!("the account setting could not be read: {e}"));
            return match denied_action(e) {
                Some(action) => c.fix(allow(&action)),
                None => c,
            };
        }
    }
    match f.type_problem {
        Ok(Some(reason)) => Check::new("serial", Verdict::Fails, reason.clone())
            .fix("change to a Nitro-based instance type, or use another route"),
        Ok(None) => Check::new(
            "serial",
            Verdict::Ready,
            format!("access enabled in {}; the instance type has a serial console", f.region),
        )
        .and(format!(
            "not opened (a session holds the console for 30 s): `ec2-broker console {}`, then log in with an OS \
             user's password",
            f.host
        )),
        Err(e) => Check::new(
            "serial",
            Verdict::Unknown,
            format!("access enabled in {}; the instance type could not be read: {e}", f.region),
        ),
    }
}

/// What placing the key with SSM Run Command gave, once the key pushed with Instance Connect was
/// refused (the proxy's `--route auto` fallback, issue 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunCommandPlacement {
    /// Placed by this command; then one login: `Some(accepted)`, or `None` when it did not finish.
    Placed {
        /// The Run Command command id.
        command_id: String,
        /// The login probe's verdict.
        accepted: Option<bool>,
    },
    /// The identity lacks `ssm:SendCommand`.
    Denied,
    /// It failed otherwise (in words).
    Failed(String),
}

/// Facts about the pushed key.
#[derive(Debug)]
pub(crate) struct KeyFacts<'a> {
    /// The OS user.
    pub user: &'a str,
    /// SendSSHPublicKey's result, its error already in words (`None`: `--no-push`).
    pub push: Option<&'a Result<(), String>>,
    /// The login probe: over which route, and `Some(accepted)` or `None` when it did not finish.
    pub probe: Option<(Route, Option<bool>)>,
    /// Run Command's placement, tried when the pushed key was refused and the agent is online.
    pub run_command: Option<&'a RunCommandPlacement>,
}

/// How the key gets in: Instance Connect's push, else Run Command's placement.
pub(crate) fn key(f: &KeyFacts<'_>) -> Check {
    let user = f.user;
    match f.push {
        None => return Check::new("key", Verdict::Unknown, "not pushed (--no-push)"),
        Some(Err(e)) => return Check::new("key", Verdict::Fails, format!("pushing a key for {user}: {e}")),
        Some(Ok(())) => {}
    }
    match f.probe {
        Some((route, Some(true))) => Check::new(
            "key",
            Verdict::Works,
            format!("a key pushed with Instance Connect for {user} was accepted (login tried over {route})"),
        )
        .and("placement: instance-connect"),
        Some((route, Some(false))) => {
            let refused = format!(
                "a key pushed with Instance Connect for {user} was refused: Permission denied (login tried over {route})"
            );
            let package = format!(
                "the ec2-instance-connect package is missing (RHEL, Debian, SUSE and AL2023-minimal images lack it), sshd \
                 has another AuthorizedKeysCommand, instance metadata is off, or there is no user {user}: install the \
                 package, or try another user, or use --no-push with a key the instance trusts"
            );
            match f.run_command {
                None => Check::new("key", Verdict::Fails, refused).fix(package),
                Some(RunCommandPlacement::Placed { command_id, accepted: Some(true) }) => {
                    Check::new("key", Verdict::Works, refused)
                        .and(format!("placed with SSM Run Command instead: accepted (command id {command_id})"))
                        .and("placement: run-command (the proxy falls back to it with --route auto)")
                }
                Some(RunCommandPlacement::Placed { command_id, accepted: Some(false) }) => {
                    Check::new("key", Verdict::Fails, refused)
                        .and(format!("placed with SSM Run Command: refused as well (command id {command_id})"))
                        .fix(format!(
                            "sshd does not read the file the placement wrote for {user}: check AuthorizedKeysFile and \
                             StrictModes (ownership and modes of the home, ~/.ssh and the file) in sshd's log"
                        ))
                }
                Some(RunCommandPlacement::Placed { command_id, accepted: None }) => {
                    Check::new("key", Verdict::Unknown, refused).and(format!(
                        "placed with SSM Run Command; the login probe did not finish (command id {command_id})"
                    ))
                }
                Some(RunCommandPlacement::Denied) => Check::new("key", Verdict::Fails, refused)
                    .and("SSM Run Command could not place it instead: the identity lacks ssm:SendCommand")
                    .fix(format!(
                        "allow ssm:SendCommand on the instance and on the document AWS-RunShellScript (root on the \
                         instance), or: {package}"
                    )),
                Some(RunCommandPlacement::Failed(e)) => Check::new("key", Verdict::Fails, refused)
                    .and(format!("SSM Run Command could not place it instead: {e}"))
                    .fix(package),
            }
        }
        Some((route, None)) => Check::new(
            "key",
            Verdict::Unknown,
            format!("the key was pushed for {user}; the login probe over {route} did not finish"),
        ),
        None => Check::new(
            "key",
            Verdict::Unknown,
            format!("the key was pushed for {user}; no route reached sshd to try it"),
        ),
    }
}

pub(crate) mod agent;
pub(crate) mod key_pair;

#[cfg(test)]
mod tests;
