//! SSM Session Manager double: the SSM API operations, the MGS data-channel websocket service and
//! an agent per session, built from `../shared/spec/ssm-data-channel.md` (§ numbers below are its).
//!
//! ```text
//!  client ──API──► api/ssm.rs (StartSession …) ──spawns──► agent.rs ──TCP──► the instance's sshd
//!  client ◄═ws/wss═► service.rs (MGS) ◄══frames (in-process channels)══► agent.rs
//! ```
//!
//! - `crate::api::ssm` (the API endpoint): `StartSession`, `ResumeSession`, `TerminateSession`,
//!   `DescribeInstanceInformation`;
//! - `service`: the websocket listener; checks the open frame's token, relays binary frames
//!   verbatim, applies the fault knobs, originates `channel_closed` (§7.2);
//! - `agent`: the agent's side of one session (§8, §9, §10.2, §13), with `handshake` holding its
//!   handshake payloads, `outgoing` its retransmission buffer and RTO estimator (§9.3), `shell`
//!   the shell plugin (Standard_Stream, InteractiveCommands, NonInteractiveCommands on a real pty
//!   or exec, §10.1, §10.5), `crypto` and `kms_agent` KMS session encryption (§11);
//! - `session`: the per-session record the three share, and the registry of sessions;
//! - `frame`: the lab's own message codec (§5), pinned by the §16 vectors; `wss://` uses the
//!   lab CA of `crate::tls`.
//!
//! Where the agent dials: `portNumber` 22 (or the instance's nominal ssh port) reaches that
//! instance's sshd (its hidden listener when it has no inbound network); any other port reaches
//! `127.0.0.1:<portNumber>` on the lab machine, which stands in for the instance's localhost.
//!
//! Shell sessions, as the real agent runs them (read in aws/amazon-ssm-agent, see `shell`):
//! (a) InteractiveCommands get **no** `ExitCode`, like Standard_Stream (`executeCommandsWithPty`
//! ends the session when the pty read fails); (b) NonInteractiveCommands never forward stdin:
//! client `Output` is only scanned for `0x03`/`0x1c` (SIGINT/SIGQUIT), there is no EOF to send;
//! `ExitCode` exists only with `separateOutputStream` true; (c) end of session: the agent waits
//! ≤ 2 s for its acks (`PrepareToCloseChannel`), reports `agent_session_state` `Terminating` to
//! MGS (recorded in `SsmSessionInfo::agent_states`, not passed to the client), and MGS sends
//! `channel_closed` with an empty `Output`; a failed start or handshake puts the agent's error
//! text in that `Output`. KMS (§11) applies to every session type but Port (§3).
//!
//! Not modelled: smux (a `LocalPortForwarding` session always runs in basic mode, §10.3), idle and
//! maximum-duration timeouts, the agent's own websocket to MGS.

mod agent;
pub(crate) mod crypto;
pub mod frame;
mod handshake;
mod kms_agent;
mod outgoing;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod shell;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub(crate) use agent::AgentConfig;
use session::Session;

use crate::state::State;

/// The agent version the double announces unless the inventory says otherwise.
pub const DEFAULT_AGENT_VERSION: &str = "3.3.1142.0";

/// Lifetime of a `TokenValue` from StartSession/ResumeSession unless changed (an inference: the
/// API only says "long enough to ensure the connection is successful", §2).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Creates a session (`labuser-` and 17 hex digits, like a real id) and starts its agent.
pub(crate) fn start_session(state: &Arc<State>, target: &str, document: &str, config: AgentConfig) -> Arc<Session> {
    let suffix = rand::random::<u128>() & ((1u128 << 68) - 1);
    let (session, inputs) = state.ssm.create(format!("labuser-{suffix:017x}"), target.into(), document.into());
    session.update(|i| {
        i.kms_key = config.kms_key_id.clone();
        i.session_type = config.shell.as_ref().map_or("Port", |s| s.kind.session_type()).into();
    });
    tokio::spawn(agent::run(session.clone(), state.clone(), config, inputs));
    session
}

/// An instance's SSM agent as DescribeInstanceInformation reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsmStatus {
    /// The agent pings the service: sessions can start (`PingStatus` `Online`).
    Online,
    /// The agent stopped pinging (`ConnectionLost`); StartSession says `TargetNotConnected`.
    ConnectionLost,
    /// Registered but inactive (`Inactive`); StartSession says `TargetNotConnected`.
    Inactive,
    /// No agent registered: the instance is absent from DescribeInstanceInformation.
    None,
}

impl SsmStatus {
    /// The `PingStatus` string, or `None` for an unregistered instance.
    pub fn ping_status(self) -> Option<&'static str> {
        match self {
            SsmStatus::Online => Some("Online"),
            SsmStatus::ConnectionLost => Some("ConnectionLost"),
            SsmStatus::Inactive => Some("Inactive"),
            SsmStatus::None => None,
        }
    }
}

/// How a scheduled websocket disconnect ends the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectKind {
    /// Abort the TCP connection (RST, no close frame), like a dead network path.
    Drop,
    /// Send a close frame with code 1000 and reason `Bye`, as MGS does about hourly (§4.2).
    Bye,
    /// End the session: `channel_closed` then a close frame, as when the agent or the instance
    /// ends it; ResumeSession no longer works (a stream killed for good).
    End,
}

/// One scheduled disconnect; each new client websocket connection takes the next one queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Disconnect once this many bytes of binary frames (both directions, whole frames as relayed)
    /// have passed on this connection; the frame that crosses the mark is still relayed.
    pub after_bytes: u64,
    /// Or once this long has passed since the connection was accepted, whichever comes first.
    pub after: Option<Duration>,
    /// How to disconnect.
    pub kind: DisconnectKind,
}

impl Disconnect {
    /// Disconnect after `after_bytes` relayed bytes.
    pub fn after_bytes(after_bytes: u64, kind: DisconnectKind) -> Self {
        Disconnect { after_bytes, after: None, kind }
    }

    /// Disconnect `after` the connection was accepted (no byte limit).
    pub fn after_time(after: Duration, kind: DisconnectKind) -> Self {
        Disconnect { after_bytes: u64::MAX, after: Some(after), kind }
    }
}

/// Fault knobs of the SSM double (`State::set_ssm_faults`). Counters count down as they fire.
/// Frame knobs act on what the service sends *to the client*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsmFaults {
    /// Disconnects for the next client connections, first one first.
    pub disconnects: VecDeque<Disconnect>,
    /// Drop the next N `acknowledge` frames going to the client.
    pub drop_acks: u32,
    /// Send the next N `acknowledge` frames to the client twice.
    pub duplicate_acks: u32,
    /// Drop the next N `output_stream_data` frames going to the client (the agent retransmits).
    pub drop_frames: u32,
    /// Send the next N `output_stream_data` frames to the client twice.
    pub duplicate_frames: u32,
    /// Flip one byte of the payload digest of the next N `output_stream_data` frames to the client.
    pub corrupt_digest: u32,
    /// Delay every relayed frame (both directions, order kept) by this much.
    pub delay: Duration,
    /// The agent reads ≤ 1024 bytes from sshd per message and sleeps 1 ms after each (§9.4).
    pub pacing: bool,
    /// How long a `TokenValue` stays valid (lab clock, so `State::advance` expires tokens).
    pub token_ttl: Duration,
    /// Send `channel_closed` with HL 112 and a NUL-padded type instead of HL 116 with spaces (§5).
    pub channel_closed_hl112: bool,
    /// ResumeSession of an ended session answers 200 with an empty `TokenValue` (the plugin's
    /// "timed out" case, §2) instead of `DoesNotExistException`.
    pub resume_ended_empty_token: bool,
}

impl Default for SsmFaults {
    fn default() -> Self {
        SsmFaults {
            disconnects: VecDeque::new(),
            drop_acks: 0,
            duplicate_acks: 0,
            drop_frames: 0,
            duplicate_frames: 0,
            corrupt_digest: 0,
            delay: Duration::ZERO,
            pacing: true,
            token_ttl: DEFAULT_TOKEN_TTL,
            channel_closed_hl112: false,
            resume_ended_empty_token: false,
        }
    }
}

/// What the lab knows about one SSM session (`Lab::ssm_sessions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsmSessionInfo {
    /// `SessionId`.
    pub id: String,
    /// The instance id (`Target`).
    pub target: String,
    /// `DocumentName`.
    pub document: String,
    /// Ended by the TerminateSession API.
    pub terminated_by_api: bool,
    /// The session is over (ResumeSession no longer works).
    pub ended: bool,
    /// Client websocket connections whose open frame was accepted.
    pub client_connects: u32,
    /// Bytes of binary frames received from clients (whole frames).
    pub bytes_from_client: u64,
    /// Bytes of binary frames sent to clients (whole frames, after fault knobs).
    pub bytes_to_client: u64,
    /// The agent has sent HandshakeComplete.
    pub handshake_done: bool,
    /// `ClientVersion` from the client's HandshakeResponse.
    pub client_version: Option<String>,
    /// `output_stream_data` frames the agent retransmitted.
    pub retransmits: u64,
    /// Payload bytes the agent read from the instance's port and sent as `Output`.
    pub bytes_from_port: u64,
    /// Time the agent spent in its 1 ms pacing sleeps after reads from the port (§9.4), as
    /// measured: `bytes_from_port / paced_sleep` bounds what pacing allows.
    pub paced_sleep: Duration,
    /// Time from the agent's first to its last `Output` message read from the instance's port:
    /// `bytes_to_client / output_span` is the rate the (paced) agent actually emitted at.
    pub output_span: Duration,
    /// When the agent sent its first `Output` message (for `output_span`).
    pub(crate) first_output: Option<std::time::Instant>,
    /// Why the session ended, once it has.
    pub end_reason: Option<String>,
    /// The handshake's `SessionType`: `Port`, `Standard_Stream`, `InteractiveCommands` or
    /// `NonInteractiveCommands`.
    pub session_type: String,
    /// The preferences' KMS key when the session is encrypted (never for Port sessions).
    pub kms_key: Option<String>,
    /// The `agent_session_state` values the agent reported to the service (`Connected`, then
    /// `Terminating` when a shell-plugin session ends on its own; MGS does not pass them on).
    pub agent_states: Vec<String>,
    /// KMS sessions: `Output`, `StdErr` and `ExitCode` payloads (either direction) that crossed
    /// the websocket **not** sealed under the session's data key, as the service saw them,
    /// including any sent before the key was agreed. Must stay 0.
    pub plaintext_outputs: u64,
    /// KMS sessions: such payloads that were sealed under the session's data key.
    pub encrypted_outputs: u64,
}
