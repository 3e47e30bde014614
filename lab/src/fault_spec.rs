//! `--fault SPEC`: every fault knob the tests use, reachable from outside (`ec2-lab up`, scenario
//! files), so a benchmark or another client can use them too. Pure parsing
//! ([`FaultSpec::from_str`]), then [`FaultSpec::apply`] to a running lab's state.
//!
//! | spec | effect |
//! |---|---|
//! | `no-pacing` | the SSM agent relays without its 1 KiB / 1 ms pacing |
//! | `ssm-drop:BYTES` / `ssm-drop-after:SECS` | the next data-channel websocket is cut (TCP reset) after that many bytes / seconds |
//! | `ssm-bye:BYTES` / `ssm-bye-after:SECS` | the same, with MGS's close frame 1000 `Bye` |
//! | `ssm-end:BYTES` / `ssm-end-after:SECS` | the same, but the session ends (`channel_closed`): it cannot be resumed |
//! | `ssm-delay:MS` | every relayed SSM frame is delayed |
//! | `ssm-drop-frames:N` / `ssm-corrupt:N` | drop / corrupt the digest of the next N output frames |
//! | `agent:INSTANCE=STATUS` | SSM agent status: `Online`, `ConnectionLost`, `Inactive`, `None` |
//! | `agent-offline:INSTANCE` | same as `agent:INSTANCE=ConnectionLost` |
//! | `throttle:N` / `throttle:N:OPERATION` | the next N API calls (of that operation) are throttled |
//! | `fail:N` / `fail:N:OPERATION` | the next N calls (of that operation) answer a 500 |
//! | `down` | every API call answers 503 |
//! | `latency:MS` / `latency:MS:OPERATION` | every API answer (of that operation) waits |
//! | `deny:SERVICE:ACTION` | IAM denies the action (`ssm:StartSession`, `ec2-instance-connect:OpenTunnel`, …) |
//! | `page-size:N` | DescribeInstances pages hold N items |
//! | `eice-close:CODE[:REASON]` / `eice-delay:MS` / `eice-text-frame` / `eice-cap:SECS` | EICE tunnel faults |
//! | `serial-access:off` / `serial-spurious-close` / `serial-key-age:SECS` | serial console faults |
//! | `mfa-code:CODE` | the MFA device's current code |

use std::str::FromStr;
use std::time::Duration;

use crate::ssm::{Disconnect, DisconnectKind, SsmStatus};
use crate::state::State;

/// One parsed `--fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSpec {
    /// The SSM agent's pacing off.
    NoPacing,
    /// Cut the next SSM websocket.
    SsmDisconnect(Disconnect),
    /// Delay every relayed SSM frame.
    SsmDelay(Duration),
    /// Drop the next N output frames.
    SsmDropFrames(u32),
    /// Corrupt the digest of the next N output frames.
    SsmCorrupt(u32),
    /// Set an instance's SSM agent status.
    Agent {
        /// The instance id.
        instance: String,
        /// Its status.
        status: SsmStatus,
    },
    /// Throttle the next N API calls, or only those of one operation.
    Throttle {
        /// How many.
        count: u32,
        /// Only this operation.
        operation: Option<String>,
    },
    /// Fail the next N API calls, or only those of one operation.
    Fail {
        /// How many.
        count: u32,
        /// Only this operation.
        operation: Option<String>,
    },
    /// Every API call answers 503.
    Down,
    /// API latency, for every operation or one.
    Latency {
        /// How long.
        delay: Duration,
        /// Only this operation.
        operation: Option<String>,
    },
    /// IAM denies `service:Action`.
    Deny(String),
    /// DescribeInstances page size.
    PageSize(usize),
    /// Close every EICE tunnel with this code and reason.
    EiceClose(u16, String),
    /// Answer EICE upgrades late.
    EiceDelay(Duration),
    /// Send a text frame on every EICE tunnel.
    EiceTextFrame,
    /// End every EICE tunnel after this long.
    EiceCap(Duration),
    /// Serial console access off for the account.
    SerialAccessOff,
    /// The first authenticated serial connection after a push is closed.
    SerialSpuriousClose,
    /// Pushed serial keys look this much older.
    SerialKeyAge(Duration),
    /// The MFA device's code.
    MfaCode(String),
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<FaultSpec, String> {
        let (name, arg) = spec.split_once(':').unwrap_or((spec, ""));
        let number = |what: &str| -> Result<u64, String> {
            let text = arg.split(':').next().unwrap_or_default();
            text.parse().map_err(|_| format!("fault '{spec}': {what} must be a number, not '{text}'"))
        };
        let count =
            |what: &str| number(what).and_then(|n| u32::try_from(n).map_err(|_| format!("fault '{spec}': too large")));
        let second = || arg.split_once(':').map(|(_, rest)| rest.to_string()).filter(|s| !s.is_empty());
        let need = |ok: bool, usage: &str| if ok { Ok(()) } else { Err(format!("fault '{spec}': use {usage}")) };
        let spec = match name {
            "no-pacing" => FaultSpec::NoPacing,
            "ssm-drop" | "ssm-bye" | "ssm-end" | "ssm-drop-after" | "ssm-bye-after" | "ssm-end-after" => {
                let kind = match name.trim_end_matches("-after") {
                    "ssm-bye" => DisconnectKind::Bye,
                    "ssm-end" => DisconnectKind::End,
                    _ => DisconnectKind::Drop,
                };
                let disconnect = if name.ends_with("-after") {
                    Disconnect::after_time(Duration::from_secs(number("SECS")?), kind)
                } else {
                    Disconnect::after_bytes(number("BYTES")?, kind)
                };
                FaultSpec::SsmDisconnect(disconnect)
            }
            "ssm-delay" => FaultSpec::SsmDelay(Duration::from_millis(number("MS")?)),
            "ssm-drop-frames" => FaultSpec::SsmDropFrames(count("N")?),
            "ssm-corrupt" => FaultSpec::SsmCorrupt(count("N")?),
            "agent" | "agent-offline" => {
                let (instance, status) = match name {
                    "agent" => arg.split_once('=').unwrap_or((arg, "")),
                    _ => (arg, "ConnectionLost"),
                };
                let status = match status {
                    "Online" => SsmStatus::Online,
                    "ConnectionLost" => SsmStatus::ConnectionLost,
                    "Inactive" => SsmStatus::Inactive,
                    "None" => SsmStatus::None,
                    other => {
                        return Err(format!(
                            "fault '{spec}': unknown agent status '{other}' (Online, ConnectionLost, Inactive, None)"
                        ));
                    }
                };
                need(!instance.is_empty(), "agent:INSTANCE=STATUS or agent-offline:INSTANCE")?;
                FaultSpec::Agent { instance: instance.to_string(), status }
            }
            "throttle" => FaultSpec::Throttle { count: count("N")?, operation: second() },
            "fail" => FaultSpec::Fail { count: count("N")?, operation: second() },
            "down" => FaultSpec::Down,
            "latency" => FaultSpec::Latency { delay: Duration::from_millis(number("MS")?), operation: second() },
            "deny" => {
                need(arg.split_once(':').is_some_and(|(s, a)| !s.is_empty() && !a.is_empty()), "deny:SERVICE:ACTION")?;
                FaultSpec::Deny(arg.to_string())
            }
            "page-size" => FaultSpec::PageSize(usize::try_from(number("N")?).unwrap_or(usize::MAX)),
            "eice-close" => {
                let code = u16::try_from(number("CODE")?)
                    .map_err(|_| format!("fault '{spec}': CODE is a websocket close code"))?;
                FaultSpec::EiceClose(code, second().unwrap_or_default())
            }
            "eice-delay" => FaultSpec::EiceDelay(Duration::from_millis(number("MS")?)),
            "eice-text-frame" => FaultSpec::EiceTextFrame,
            "eice-cap" => FaultSpec::EiceCap(Duration::from_secs(number("SECS")?)),
            "serial-access" => {
                need(arg == "off", "serial-access:off")?;
                FaultSpec::SerialAccessOff
            }
            "serial-spurious-close" => FaultSpec::SerialSpuriousClose,
            "serial-key-age" => FaultSpec::SerialKeyAge(Duration::from_secs(number("SECS")?)),
            "mfa-code" => {
                need(!arg.is_empty(), "mfa-code:CODE")?;
                FaultSpec::MfaCode(arg.to_string())
            }
            _ => return Err(format!("unknown fault '{spec}' (see `ec2-lab up --help`)")),
        };
        Ok(spec)
    }
}

impl FaultSpec {
    /// Sets the knob on a running lab.
    pub fn apply(&self, state: &State) {
        match self.clone() {
            FaultSpec::NoPacing => state.set_ssm_faults(|f| f.pacing = false),
            FaultSpec::SsmDisconnect(d) => state.set_ssm_faults(|f| f.disconnects.push_back(d)),
            FaultSpec::SsmDelay(d) => state.set_ssm_faults(|f| f.delay = d),
            FaultSpec::SsmDropFrames(n) => state.set_ssm_faults(|f| f.drop_frames = n),
            FaultSpec::SsmCorrupt(n) => state.set_ssm_faults(|f| f.corrupt_digest = n),
            FaultSpec::Agent { instance, status } => state.set_ssm_status(&instance, status),
            FaultSpec::Throttle { count, operation } => state.set_faults(|f| {
                f.throttle_next = count;
                f.throttle_only = operation;
            }),
            FaultSpec::Fail { count, operation } => state.set_faults(|f| {
                f.fail_next = count;
                f.fail_only = operation;
            }),
            FaultSpec::Down => state.set_faults(|f| f.down = true),
            FaultSpec::Latency { delay, operation: None } => state.set_faults(|f| f.latency = delay),
            FaultSpec::Latency { delay, operation: Some(op) } => {
                state.set_faults(|f| _ = f.latency_by_operation.insert(op, delay))
            }
            FaultSpec::Deny(action) => state.set_faults(|f| _ = f.deny.insert(action)),
            FaultSpec::PageSize(n) => state.set_faults(|f| f.page_size = Some(n)),
            FaultSpec::EiceClose(code, reason) => state.set_eice_faults(|f| f.close_code = Some((code, reason))),
            FaultSpec::EiceDelay(d) => state.set_eice_faults(|f| f.delay = d),
            FaultSpec::EiceTextFrame => state.set_eice_faults(|f| f.send_text_frame = true),
            FaultSpec::EiceCap(d) => state.set_eice_faults(|f| f.tunnel_cap = Some(d)),
            FaultSpec::SerialAccessOff => state.set_serial_access(false),
            FaultSpec::SerialSpuriousClose => state.set_serial_faults(|f| f.spurious_first_close = true),
            FaultSpec::SerialKeyAge(d) => state.set_serial_faults(|f| f.key_age = d),
            FaultSpec::MfaCode(code) => state.set_mfa_code(&code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_into_knobs() {
        let cases = [
            ("no-pacing", FaultSpec::NoPacing),
            ("ssm-bye:65536", FaultSpec::SsmDisconnect(Disconnect::after_bytes(65536, DisconnectKind::Bye))),
            ("ssm-end:4096", FaultSpec::SsmDisconnect(Disconnect::after_bytes(4096, DisconnectKind::End))),
            (
                "ssm-drop-after:3",
                FaultSpec::SsmDisconnect(Disconnect::after_time(Duration::from_secs(3), DisconnectKind::Drop)),
            ),
            (
                "agent-offline:i-0a1b2c3d4e5f60718",
                FaultSpec::Agent { instance: "i-0a1b2c3d4e5f60718".into(), status: SsmStatus::ConnectionLost },
            ),
            ("agent:i-0a=Inactive", FaultSpec::Agent { instance: "i-0a".into(), status: SsmStatus::Inactive }),
            ("throttle:2", FaultSpec::Throttle { count: 2, operation: None }),
            (
                "throttle:9:GetConsoleOutput",
                FaultSpec::Throttle { count: 9, operation: Some("GetConsoleOutput".into()) },
            ),
            ("fail:1:SendSSHPublicKey", FaultSpec::Fail { count: 1, operation: Some("SendSSHPublicKey".into()) }),
            ("fail:3", FaultSpec::Fail { count: 3, operation: None }),
            (
                "latency:250:DescribeInstances",
                FaultSpec::Latency { delay: Duration::from_millis(250), operation: Some("DescribeInstances".into()) },
            ),
            ("deny:ssm:StartSession", FaultSpec::Deny("ssm:StartSession".into())),
            ("eice-close:1011:gone", FaultSpec::EiceClose(1011, "gone".into())),
            ("serial-access:off", FaultSpec::SerialAccessOff),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<FaultSpec>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_specs_say_what_to_write() {
        for (text, hint) in [
            ("throttle:many", "must be a number"),
            ("deny:StartSession", "deny:SERVICE:ACTION"),
            ("agent:i-0a=Asleep", "unknown agent status"),
            ("explode", "unknown fault"),
            ("serial-access:on", "serial-access:off"),
        ] {
            let err = text.parse::<FaultSpec>().unwrap_err();
            assert!(err.contains(hint), "{text}: {err}");
        }
    }
}
