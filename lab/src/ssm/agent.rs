//! The SSM agent double: the agent's side of one session (`ssm-data-channel.md` §8, §9, §10.2,
//! §10.3 basic mode, §11, §13), reproducing the real agent's rules rather than ideal ones. Port
//! sessions dial sshd; shell-plugin sessions run a process (`super::shell`, client input in
//! `shell_input`); encrypted sessions add the KMS handshake and challenge (`encryption`):
//!
//! - handshake: HandshakeRequest as seq 0 with SYN, ≤ 15 s for the response, any `ActionStatus`
//!   ≠ 1 ends the session; until HandshakeComplete is *sent*, other client data is acked and
//!   discarded; then it dials sshd, and client `Output` is not acked while no TCP is up;
//! - receiving (§9.2 agent column): in order ⇒ write to TCP synchronously, then ack, then drain
//!   the reorder buffer; ahead ⇒ ack and store; behind ⇒ re-ack; no digest check;
//! - sending (§9.3): see `outgoing`; sshd is read ≤ 1024 bytes at a time with a 1 ms sleep after
//!   each read (pacing knob; with pacing off, up to 64 KiB a read, sent as the same ≤ 1024-byte
//!   messages), not while paused (§7.3);
//! - end: sshd EOF, a `TerminateSession` flag, a failed handshake or dial, the shell's process
//!   ending ⇒ wait ≤ 2 s for acks, then the session ends and the service sends `channel_closed`
//!   (with the agent's error text as `Output` when starting failed).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::crypto::AgentCipher;
use super::frame::{self, ACKNOWLEDGE, CHANNEL_CLOSED, FLAG_SYN, INPUT_STREAM_DATA, Message, OUTPUT_STREAM_DATA};
use super::frame::{flag, payload_type};
use super::handshake;
use super::outgoing::{Outgoing, RESEND_INTERVAL};
use super::session::{AgentInput, Session};
use super::shell::{self, Process, ShellConfig, ShellKind};
use crate::state::{State, lock};

mod encryption;
mod shell_input;

/// How long the agent waits for the HandshakeResponse (§8).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a finished session waits for its outgoing frames to be acked (§10.6).
const END_DRAIN: Duration = Duration::from_secs(2);
/// The agent's reorder-buffer capacity (§9.3).
const REORDER_CAPACITY: usize = 100_000;
/// `StreamDataPayloadSize`: the most bytes read from sshd per message (§5).
const STREAM_CHUNK: usize = 1024;
/// One read from sshd with pacing off: 64 messages' worth.
const UNPACED_READ: usize = 64 * STREAM_CHUNK;
/// The pause after every read from sshd (§9.4).
const PACING_SLEEP: Duration = Duration::from_millis(1);
/// Dialing loopback either works at once or not at all; this only bounds a wedged accept queue.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent of one session needs to know.
#[derive(Debug, Clone)]
pub(crate) struct AgentConfig {
    /// `AgentVersion` announced in the HandshakeRequest.
    pub(crate) version: String,
    /// The document's `properties`, sent verbatim as `SessionType.Properties` (§3).
    pub(crate) properties: BTreeMap<String, String>,
    /// `type == LocalPortForwarding` (basic mode: redial on next data after the TCP closes).
    pub(crate) local_port_forwarding: bool,
    /// Where `portNumber` leads: the instance's sshd for 22 (and its nominal ssh port), else
    /// `127.0.0.1:<portNumber>`; `None` makes the dial fail as refused.
    pub(crate) destination: Option<SocketAddr>,
    /// The shell plugin's settings; `None` for a Port session.
    pub(crate) shell: Option<ShellConfig>,
    /// The preferences' `kmsKeyId` (never set for Port sessions, §3).
    pub(crate) kms_key_id: Option<String>,
    /// The agent's `RequireKMSChallengeResponse` (`require_kms_challenge` of the preferences).
    pub(crate) require_kms_challenge: bool,
}

/// Runs the agent until the session ends.
pub(crate) async fn run(
    session: Arc<Session>,
    state: Arc<State>,
    config: AgentConfig,
    mut inputs: mpsc::UnboundedReceiver<AgentInput>,
) {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let sender = Arc::new(Sender {
        session: session.clone(),
        out: Mutex::new(Outgoing::new()),
        paused: watch::channel(false).0,
        cipher: Mutex::new(None),
    });
    let challenge_bytes: [u8; 16] = rand::random();
    let mut agent = Agent {
        sender,
        state,
        config,
        expected: 0,
        reorder: BTreeMap::new(),
        handshake: Handshake::Requested,
        requested_at: Instant::now(),
        tcp: None,
        reader: None,
        tcp_gen: 0,
        redial_on_data: false,
        events: events_tx,
        ending: None,
        finished: None,
        random_challenge: crate::base64::encode(&challenge_bytes),
        challenge: None,
        process: None,
        close_output: String::new(),
        deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
    };
    session.update(|i| i.agent_states.push("Connected".into()));
    let shell_kind = agent.config.shell.as_ref().map(|s| s.kind);
    if shell_kind.is_none() || shell_kind == Some(ShellKind::NonInteractive) || agent.config.kms_key_id.is_some() {
        agent.request_handshake();
    } else {
        // Standard_Stream and InteractiveCommands without KMS skip the handshake (§8); the
        // process starts when the first client attaches (below), so a command that exits at
        // once cannot end the session before anyone could read its output.
        agent.handshake = Handshake::Complete;
    }
    let mut started = agent.handshake != Handshake::Complete;
    let mut tick = tokio::time::interval(RESEND_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            input = inputs.recv() => match input {
                Some(AgentInput::Frame(f)) => agent.handle_frame(&f).await,
                Some(AgentInput::Pause) => agent.sender.set_paused(true),
                Some(AgentInput::Start) => {
                    agent.sender.set_paused(false);
                    if !started {
                        started = true;
                        agent.start_backend().await;
                    }
                }
                Some(AgentInput::Terminate) | None => break,
            },
            Some(event) = events.recv() => agent.handle_event(event),
            _ = tick.tick() => agent.handle_tick(Instant::now()),
            _ = tokio::time::sleep_until(agent.deadline), if agent.handshake != Handshake::Complete && agent.ending.is_none() => {
                let text = match agent.handshake {
                    Handshake::ChallengeSent => "Timed out waiting for encryption challenge.",
                    _ => "Handshake timed out. Please ensure that you have the latest version of the session manager plugin.",
                };
                agent.fail(format!("Encountered error while initiating handshake. {text}"));
            }
        }
        if let Some(reason) = agent.finished.take() {
            if agent.config.shell.is_some() {
                session.update(|i| i.agent_states.push("Terminating".into()));
            }
            session.end_with_output(&reason, false, &agent.close_output);
            break;
        }
    }
    agent.close_tcp();
    if let Some(mut process) = agent.process.take() {
        process.kill();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// HandshakeRequest sent, no response yet.
    Requested,
    /// A successful response arrived; HandshakeComplete is next.
    Responded,
    /// KMS: the EncChallengeRequest is out, its response not in yet (§11).
    ChallengeSent,
    /// HandshakeComplete sent.
    Complete,
}

/// What the TCP reader and the shell plugin's tasks report to the agent loop.
pub(crate) enum AgentEvent {
    /// The connection (of generation `gen`) reached EOF (`None`) or failed.
    TcpClosed { generation: u64, error: Option<String> },
    /// The session's process ended and everything it wrote was sent.
    ProcessEnded,
}

/// Sending stream data: shared by the agent loop and the TCP reader, which sends on its own like
/// the agent's reader goroutine (so a blocked TCP write never stalls the other direction).
pub(crate) struct Sender {
    session: Arc<Session>,
    out: Mutex<Outgoing>,
    paused: watch::Sender<bool>,
    /// Set once the KMS handshake decrypted the data key: Output, StdErr and ExitCode are
    /// encrypted from then on (`SendStreamDataMessage`, §11.7).
    cipher: Mutex<Option<AgentCipher>>,
}

impl Sender {
    /// Sequences, sends (unless paused) and keeps one `output_stream_data`.
    pub(crate) fn send_stream(&self, payload_type: u32, payload: Vec<u8>) {
        let encrypted = [payload_type::OUTPUT, payload_type::STDERR, payload_type::EXIT_CODE].contains(&payload_type);
        let payload = match lock(&self.cipher).as_mut() {
            Some(cipher) if encrypted => cipher.encrypt(&payload),
            _ => payload,
        };
        let mut out = lock(&self.out);
        let seq = out.next_seq();
        let flags = if seq == 0 { FLAG_SYN } else { 0 };
        let frame = Message::new(OUTPUT_STREAM_DATA, seq, flags, payload_type, payload).encode();
        if !*self.paused.borrow() {
            self.session.to_client(frame.clone());
        }
        out.push(seq, frame, Instant::now());
    }

    fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Returns once the session is not paused (§7.3).
    pub(crate) async fn wait_unpaused(&self) {
        let _ = self.paused.subscribe().wait_for(|p| !*p).await;
    }

    /// Waits while the path to the client is full (its socket's flow control).
    pub(crate) async fn wait_client_room(&self) {
        self.session.wait_client_room().await;
    }
}

struct Agent {
    sender: Arc<Sender>,
    state: Arc<State>,
    config: AgentConfig,
    expected: i64,
    reorder: BTreeMap<i64, Message>,
    handshake: Handshake,
    requested_at: Instant,
    tcp: Option<OwnedWriteHalf>,
    reader: Option<JoinHandle<()>>,
    tcp_gen: u64,
    redial_on_data: bool,
    events: mpsc::UnboundedSender<AgentEvent>,
    ending: Option<(Instant, String)>,
    finished: Option<String>,
    /// `aws:ssm:RandomChallenge`: base64 of 16 random bytes, sent in `KMSEncryption`.
    random_challenge: String,
    /// The 64 bytes of the EncChallengeRequest, until the response matched them.
    challenge: Option<Vec<u8>>,
    /// The shell plugin's process.
    process: Option<Process>,
    /// `Output` of the `channel_closed` the service sends when the session ends.
    close_output: String,
    /// When the handshake (or the challenge) times out.
    deadline: tokio::time::Instant,
}

impl Agent {
    fn request_handshake(&mut self) {
        let (session_type, properties) = match &self.config.shell {
            Some(shell) => (shell.kind.session_type(), serde_json::Value::Null),
            None => ("Port", serde_json::to_value(&self.config.properties).unwrap_or_default()),
        };
        let kms = self.config.kms_key_id.as_deref().map(|k| (k, self.random_challenge.as_str()));
        let payload = handshake::request(&self.config.version, session_type, &properties, kms);
        self.requested_at = Instant::now();
        self.sender.send_stream(payload_type::HANDSHAKE_REQUEST, payload);
    }

    async fn handle_frame(&mut self, bytes: &[u8]) {
        let Ok(msg) = Message::decode(bytes) else {
            return; // The agent logs and ignores what it cannot parse: no ack.
        };
        match msg.message_type.as_str() {
            ACKNOWLEDGE => {
                self.sender.set_paused(false);
                if let Some(seq) = frame::acked_sequence(&msg.payload) {
                    lock(&self.sender.out).handle_ack(seq, Instant::now());
                }
                self.check_ending(Instant::now());
            }
            INPUT_STREAM_DATA => {
                self.sender.set_paused(false);
                self.handle_stream(msg).await;
                if self.handshake == Handshake::Responded && self.finished.is_none() && self.ending.is_none() {
                    match self.sender.session.info().kms_key.is_some() {
                        true => self.send_challenge(),
                        false => self.complete_handshake().await,
                    }
                }
            }
            CHANNEL_CLOSED => self.finished = Some("channel_closed from the client side".into()),
            "pause_publication" => self.sender.set_paused(true),
            "start_publication" => self.sender.set_paused(false),
            _ => {}
        }
    }

    /// The receiver rules of §9.2, agent column.
    async fn handle_stream(&mut self, msg: Message) {
        let seq = msg.sequence_number;
        if seq == self.expected {
            if !self.process(&msg).await {
                return; // Not ready: no ack, no advance; the client retransmits.
            }
            self.ack(&msg);
            self.expected += 1;
            while let Some(next) = self.reorder.remove(&self.expected) {
                if self.ending.is_some() || !self.process(&next).await {
                    self.reorder.insert(next.sequence_number, next);
                    break;
                }
                self.expected += 1;
            }
        } else if seq > self.expected {
            if self.reorder.len() < REORDER_CAPACITY {
                self.ack(&msg);
                self.reorder.entry(seq).or_insert(msg);
            }
        } else {
            self.ack(&msg); // A duplicate: re-acked, not re-delivered.
        }
    }

    /// Handles one in-order client message; `false` means "not ready" (leave it unacked).
    async fn process(&mut self, msg: &Message) -> bool {
        if self.handshake != Handshake::Complete {
            if msg.payload_type == payload_type::HANDSHAKE_RESPONSE && self.handshake == Handshake::Requested {
                self.handle_handshake_response(&msg.payload);
            } else if msg.payload_type == payload_type::ENC_CHALLENGE_RESPONSE
                && self.handshake == Handshake::ChallengeSent
            {
                self.handle_challenge_response(&msg.payload).await;
            }
            return true; // Anything else before HandshakeComplete is acked and discarded (§8.6).
        }
        if self.config.shell.is_some() {
            self.process_shell(msg);
            return true;
        }
        match msg.payload_type {
            payload_type::OUTPUT => {
                if self.tcp.is_none() && self.redial_on_data && self.dial().await.is_ok() {
                    self.redial_on_data = false;
                }
                let Some(tcp) = self.tcp.as_mut() else {
                    return false;
                };
                tcp.write_all(&msg.payload).await.is_ok()
            }
            payload_type::FLAG => {
                let value = msg.payload.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                match value {
                    Some(flag::DISCONNECT_TO_PORT) => {
                        self.close_tcp();
                        if self.config.local_port_forwarding {
                            self.redial_on_data = true;
                        } else {
                            self.begin_ending("the client sent DisconnectToPort".into());
                        }
                    }
                    Some(flag::TERMINATE_SESSION) => self.begin_ending("the client sent TerminateSession".into()),
                    _ => {}
                }
                true
            }
            _ => true, // Size, late handshake payloads, …: nothing to do for a Port session.
        }
    }

    fn handle_handshake_response(&mut self, payload: &[u8]) {
        let response = handshake::check_response(payload);
        self.sender.session.update(|i| i.client_version = response.client_version);
        if let Some(reason) = response.failure {
            return self.fail(format!("Encountered error while initiating handshake. {reason}"));
        }
        if self.config.kms_key_id.is_some() {
            // `finalizeKMSEncryption` (datachannel.go), wrapped as `PerformHandshake` reports it.
            if let Err(e) = self.finalize_kms(response.kms) {
                return self.fail(format!("Encountered error while initiating handshake. {e}"));
            }
        }
        self.handshake = Handshake::Responded;
    }

    /// Sends HandshakeComplete (after the response was acked, as the agent does) and starts
    /// the session: dials sshd, or starts the shell plugin's process.
    async fn complete_handshake(&mut self) {
        let kms = self.sender.session.info().kms_key.is_some();
        let message = if kms { "This session is encrypted using AWS KMS." } else { "" };
        let payload = handshake::complete(self.requested_at.elapsed(), message);
        self.sender.send_stream(payload_type::HANDSHAKE_COMPLETE, payload);
        self.handshake = Handshake::Complete;
        self.sender.session.update(|i| i.handshake_done = true);
        self.start_backend().await;
    }

    async fn start_backend(&mut self) {
        let Some(shell) = self.config.shell.clone() else {
            if let Err(e) = self.dial().await {
                self.begin_ending(format!("Unable to start port session: {e}"));
            }
            return;
        };
        let pacing = self.state.ssm_faults().pacing;
        match shell::start(&shell, self.sender.clone(), pacing, self.events.clone()).await {
            Ok(process) => self.process = Some(process),
            Err(e) => self.fail(e),
        }
    }

    /// Ends the session now with `text` as the `channel_closed` output (a failed start or
    /// handshake: the real agent marks the plugin failed with this text).
    fn fail(&mut self, text: String) {
        self.close_output = text.clone();
        self.begin_ending(text);
    }

    fn ack(&self, msg: &Message) {
        self.sender.session.to_client(frame::ack(msg).encode());
    }

    async fn dial(&mut self) -> Result<(), String> {
        let port = self.config.properties.get("portNumber").cloned().unwrap_or_default();
        let refused = || format!("dial tcp 127.0.0.1:{port}: connect: connection refused");
        let addr = self.config.destination.ok_or_else(refused)?;
        let stream = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        self.tcp_gen += 1;
        self.tcp = Some(write);
        let pump = pump(read, self.tcp_gen, self.sender.clone(), self.state.clone(), self.events.clone());
        self.reader = Some(tokio::spawn(pump));
        Ok(())
    }

    fn close_tcp(&mut self) {
        self.tcp = None;
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }

    fn handle_event(&mut self, event: AgentEvent) {
        let (generation, error) = match event {
            AgentEvent::TcpClosed { generation, error } => (generation, error),
            AgentEvent::ProcessEnded => {
                self.begin_ending("the session's process exited".into());
                return;
            }
        };
        if generation != self.tcp_gen || self.ending.is_some() {
            return;
        }
        self.close_tcp();
        if self.config.local_port_forwarding {
            self.redial_on_data = true; // Basic mode waits for the next client data, then redials.
            return;
        }
        self.begin_ending(match error {
            None => "sshd closed the connection".into(),
            Some(e) => format!("reading from the port failed: {e}"),
        });
    }

    fn handle_tick(&mut self, now: Instant) {
        if !*self.sender.paused.borrow() {
            let resend = lock(&self.sender.out).poll_resend(now);
            if let Some(frame) = resend {
                self.sender.session.to_client(frame);
                self.sender.session.update(|i| i.retransmits += 1);
            }
        }
        self.check_ending(now);
    }

    fn begin_ending(&mut self, reason: String) {
        if self.ending.is_none() {
            self.close_tcp();
            self.ending = Some((Instant::now() + END_DRAIN, reason));
            self.check_ending(Instant::now());
        }
    }

    fn check_ending(&mut self, now: Instant) {
        if let Some((deadline, reason)) = &self.ending
            && (now >= *deadline || lock(&self.sender.out).is_empty())
        {
            self.finished = Some(reason.clone());
        }
    }
}

/// Reads sshd and sends what it reads, like the agent's port reader.
async fn pump(
    mut read: OwnedReadHalf,
    generation: u64,
    sender: Arc<Sender>,
    state: Arc<State>,
    events: mpsc::UnboundedSender<AgentEvent>,
) {
    let mut paused = sender.paused.subscribe();
    let mut buf = vec![0u8; UNPACED_READ];
    loop {
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        sender.wait_client_room().await;
        // Paced, one read per message as the agent does; unpaced (the client's own ceiling), one
        // larger read split into the same ≤ 1024-byte messages, so the double's syscalls are not
        // what the benchmark measures (the frames on the wire are the same).
        let pacing = state.ssm_faults().pacing;
        let room = if pacing { STREAM_CHUNK } else { UNPACED_READ };
        match read.read(&mut buf[..room]).await {
            Ok(0) => {
                let _ = events.send(AgentEvent::TcpClosed { generation, error: None });
                return;
            }
            Ok(n) => {
                for chunk in buf[..n].chunks(STREAM_CHUNK) {
                    sender.send_stream(payload_type::OUTPUT, chunk.to_vec());
                }
                let now = Instant::now();
                sender.session.update(|i| {
                    i.bytes_from_port += n as u64;
                    i.output_span = now - *i.first_output.get_or_insert(now);
                });
            }
            Err(e) => {
                let _ = events.send(AgentEvent::TcpClosed { generation, error: Some(e.to_string()) });
                return;
            }
        }
        if pacing {
            let slept = Instant::now();
            tokio::time::sleep(PACING_SLEEP).await;
            sender.session.update(|i| i.paced_sleep += slept.elapsed());
        }
    }
}
