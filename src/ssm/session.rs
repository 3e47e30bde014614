//! The client side of one data-channel session as a state machine: no I/O, no clock.
//!
//! Inputs are `handle_*`, `send` and `send_size`; after each input the driver calls every `poll_*`
//! until it returns nothing: `poll_transmit`, then `poll_event`, then `poll_timeout`.
//!
//! One core for every front end: the [`SessionKind`] in the [`Config`] says what StartSession
//! started (a port session for ssh, a shell, a command), and the session answers the agent's
//! handshake accordingly, runs KMS encryption when the agent asks for it (the driver fetches the
//! data key: [`Event::DataKeyNeeded`], then [`Session::handle_data_key`]) and reports stderr and
//! the exit code of command sessions. What an in-order agent message does is in `inbound`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::crypto::{DataKey, SessionCipher};
use super::handshake::{Acknowledge, ChannelClosed, KeyRequest, Plan, SessionIds, Size};
use super::message::{DecodeError, FLAGS_ACK, Message, flag, kind, payload};
use super::recv_buffer::{RecvBuffer, Verdict};
use super::send_buffer::SendBuffer;
use super::session_kind::SessionKind;

mod inbound;

/// Tunables of a session.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Largest payload per message. The official peers use 1024 (§5); the agent accepts any size,
    /// but MGS limits are unknown, so we stay at theirs.
    pub chunk_size: usize,
    /// Flow-control window: payload bytes sent and not yet acknowledged.
    pub max_in_flight_bytes: usize,
    /// Window in messages, so one-byte writes cannot pile up thousands of headers.
    pub max_in_flight_messages: usize,
    /// Out-of-order agent messages kept while waiting for a gap to fill.
    pub max_reorder: usize,
    /// How long the agent has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Wall-clock milliseconds since the Unix epoch at the `now` given to [`Session::new`]
    /// (messages carry a creation date, and 0 is rejected by the peers).
    pub unix_ms: u64,
    /// Seed for message ids (random in production, fixed in tests).
    pub seed: u64,
    /// What StartSession started.
    pub kind: SessionKind,
    /// The session and target, for the KMS encryption context.
    pub ids: SessionIds,
    /// Shell and interactive-command sessions without KMS skip the handshake and start with the
    /// pty's output; a command that prints nothing sends nothing, so after this long without any
    /// agent message the session opens for input anyway. 3 s: the agent resends its handshake
    /// request at least every second (its RTO cap, §9.3), so one would have arrived by then.
    pub input_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chunk_size: 1024,
            // 512 KiB in flight: 50 MB/s at a 10 ms round trip, and ≤ 1 MiB of frames held.
            max_in_flight_bytes: 512 * 1024,
            max_in_flight_messages: 1024,
            max_reorder: 1024,
            // The agent itself gives up after 15 s (§8); allow for its dial and MGS latency.
            handshake_timeout: Duration::from_secs(30),
            unix_ms: 1,
            seed: 1,
            kind: SessionKind::Port,
            ids: SessionIds::default(),
            input_grace: Duration::from_secs(3),
        }
    }
}

/// What the session tells its driver.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The handshake completed: stream data may flow.
    Ready {
        /// The agent's version.
        agent_version: String,
        /// The agent's message for the user (the official plugin prints it on stdout).
        customer_message: String,
        /// Whether the session is KMS-encrypted.
        encrypted: bool,
    },
    /// Bytes from the instance (a command's stdout), in order, each exactly once.
    Data(Vec<u8>),
    /// A command's standard error (`StdErr`, payload 11), in order.
    StdErr(Vec<u8>),
    /// The command's exit code (`ExitCode`, payload 12, `EXIT_CODE: <n>`).
    ExitCode(i32),
    /// The agent asks for KMS encryption: generate a data key of
    /// [`crypto::DATA_KEY_LEN`](super::crypto::DATA_KEY_LEN) bytes for this key and context, and
    /// give the result to [`Session::handle_data_key`].
    DataKeyNeeded(KeyRequest),
    /// The session is over.
    Closed(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// MGS said the channel is closed (the instance's port closed, or the session was terminated).
    ChannelClosed {
        /// MGS's text, often empty.
        output: String,
    },
    /// We could not accept what the agent asked for.
    HandshakeRefused(String),
    /// The agent never completed the handshake.
    HandshakeTimeout,
    /// The agent could not connect to the port on the instance.
    ConnectToPortError,
    /// The data key for KMS encryption could not be had; the agent was told so.
    KmsFailed {
        /// The key the agent named.
        key_id: String,
        /// What the key source said.
        detail: String,
    },
    /// The agent sent something the session cannot accept (a payload that does not decrypt, an
    /// unreadable exit code): it ended rather than pass on unverified bytes.
    Protocol(String),
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Stream payload bytes delivered to the driver.
    pub bytes_in: u64,
    /// Stream payload bytes accepted from the driver.
    pub bytes_out: u64,
    /// Retransmitted messages.
    pub retransmits: u64,
    /// Acks sent (including re-acks).
    pub acks_sent: u64,
    /// Agent messages received again after delivery.
    pub duplicates: u64,
    /// Agent messages received ahead of a gap.
    pub out_of_order: u64,
    /// Frames that failed to decode (bad digest, bad length ...): dropped unacked.
    pub bad_frames: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Closed,
}

/// Protocol state for one SSM data-channel session.
#[derive(Debug)]
pub(crate) struct Session {
    config: Config,
    start: Instant,
    phase: Phase,
    next_seq: i64,
    send: SendBuffer,
    recv: RecvBuffer,
    acks: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    connected: bool,
    paused: bool,
    handshake_deadline: Option<Instant>,
    refusal: Option<String>,
    agent_version: String,
    ids: u64,
    stats: Stats,
    /// A handshake answer waiting for the data key.
    pending: Option<Plan>,
    cipher: Option<SessionCipher>,
    /// Whether a handshake request came (else a pty session opens on its first output).
    saw_handshake: bool,
    /// When a pty session without a handshake opens for input anyway.
    grace_deadline: Option<Instant>,
    /// The last `Size` asked for before the session opened.
    pending_size: Option<Size>,
    /// Frames still to send after the session closed (a failed handshake answer).
    last_words: VecDeque<Vec<u8>>,
}

impl Session {
    /// A session whose websocket is open and whose open frame was sent.
    pub(crate) fn new(config: Config, now: Instant) -> Session {
        Session {
            start: now,
            phase: Phase::Handshake,
            next_seq: 0,
            send: SendBuffer::new(),
            recv: RecvBuffer::new(config.max_reorder),
            acks: VecDeque::new(),
            events: VecDeque::new(),
            connected: true,
            paused: false,
            handshake_deadline: Some(now + config.handshake_timeout),
            refusal: None,
            agent_version: String::new(),
            ids: config.seed,
            stats: Stats::default(),
            pending: None,
            cipher: None,
            saw_handshake: false,
            grace_deadline: config.kind.handshake_optional().then(|| now + config.input_grace),
            pending_size: None,
            last_words: VecDeque::new(),
            config,
        }
    }

    /// Handles one websocket frame (binary or text). A frame that does not decode is dropped
    /// without an ack, so the agent resends it; the error is returned for the log.
    pub(crate) fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DecodeError> {
        let msg = Message::decode(frame).inspect_err(|_| self.stats.bad_frames += 1)?;
        if self.phase == Phase::Closed {
            return Ok(());
        }
        match msg.kind.as_str() {
            kind::OUTPUT_STREAM_DATA => {
                self.paused = false;
                self.receive_stream(now, msg);
            }
            kind::ACKNOWLEDGE => {
                self.paused = false;
                if let Ok(ack) = serde_json::from_slice::<Acknowledge>(&msg.payload) {
                    self.send.ack(now, ack.sequence);
                }
            }
            kind::CHANNEL_CLOSED => {
                let closed: ChannelClosed = serde_json::from_slice(&msg.payload).unwrap_or_default();
                let reason = match self.refusal.take() {
                    Some(refusal) => CloseReason::HandshakeRefused(refusal),
                    None => CloseReason::ChannelClosed { output: closed.output },
                };
                self.close(reason);
            }
            kind::PAUSE_PUBLICATION => self.paused = true,
            kind::START_PUBLICATION => self.paused = false,
            // agent_session_state and anything newer: nothing for a client to do (§6.1).
            _ => {}
        }
        Ok(())
    }

    /// Timers: retransmissions, the handshake deadline, a pty session's input grace.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.grace_deadline.is_some_and(|d| d <= now) && self.phase == Phase::Handshake && !self.saw_handshake {
            self.open(now, String::new());
        }
        if self.handshake_deadline.is_some_and(|d| d <= now) && self.phase == Phase::Handshake {
            let reason = match self.refusal.take() {
                Some(r) => CloseReason::HandshakeRefused(r),
                None => CloseReason::HandshakeTimeout,
            };
            self.close(reason);
            return;
        }
        if self.connected && !self.paused {
            self.send.handle_timeout(now);
        }
    }

    /// The websocket went away: hold transmissions until [`Session::handle_reconnect`].
    pub(crate) fn handle_disconnect(&mut self) {
        self.connected = false;
    }

    /// A new websocket is open (its open frame sent): resend everything unacknowledged now.
    pub(crate) fn handle_reconnect(&mut self, _now: Instant) {
        self.connected = true;
        self.paused = false;
        self.send.requeue_all();
    }

    /// How many bytes [`Session::send`] would accept now (0 before the handshake completes).
    pub(crate) fn send_capacity(&self) -> usize {
        if self.phase != Phase::Open {
            return 0;
        }
        let bytes = self.config.max_in_flight_bytes.saturating_sub(self.send.bytes_in_flight());
        let messages = self.config.max_in_flight_messages.saturating_sub(self.send.len());
        bytes.min(messages.saturating_mul(self.config.chunk_size))
    }

    #[cfg(test)]
    /// Whether the window is open (read stdin only then).
    pub(crate) fn can_send(&self) -> bool {
        self.send_capacity() > 0
    }

    /// Queues stream bytes for the instance (keystrokes, signals as their control bytes such as
    /// 0x03, or a port's stream), encrypted when KMS is on. Returns how many were accepted (flow
    /// control). Bytes are sent as given: no newline rewriting (§10.1's plugin quirk is not ours).
    pub(crate) fn send(&mut self, now: Instant, data: &[u8]) -> usize {
        let take = data.len().min(self.send_capacity());
        for chunk in data[..take].chunks(self.config.chunk_size) {
            let body = match &self.cipher {
                Some(cipher) => cipher.encrypt(chunk),
                None => chunk.to_vec(),
            };
            self.push_stream(now, payload::OUTPUT, body, chunk.len());
        }
        self.stats.bytes_out += take as u64;
        take
    }

    /// Tells the agent the terminal's size (`Size`, §10.1, §16.6): at the start and on every
    /// change. Before the session opens only the last size is kept, and sent when it opens.
    /// Ignored by sessions without a pty.
    pub(crate) fn send_size(&mut self, now: Instant, cols: u16, rows: u16) {
        if !self.config.kind.has_pty() || self.phase == Phase::Closed {
            return;
        }
        let size = Size { cols: cols.into(), rows: rows.into() };
        if self.phase == Phase::Handshake {
            self.pending_size = Some(size);
            return;
        }
        // Two numbers always serialise.
        let body = serde_json::to_vec(&size).expect("size serialises");
        self.push_stream(now, payload::SIZE, body, 0);
    }

    /// The data key asked for by [`Event::DataKeyNeeded`]: `Err` says why there is none (the
    /// agent is told, and the session ends with [`CloseReason::KmsFailed`]).
    pub(crate) fn handle_data_key(&mut self, now: Instant, key: Result<DataKey, String>) {
        let Some(plan) = self.pending.take() else { return };
        let key_id = plan.key_request().map(|r| r.key_id.clone()).unwrap_or_default();
        let cipher = key.and_then(|k| match SessionCipher::new(&k.plaintext) {
            Ok(cipher) => Ok((cipher, k.ciphertext)),
            Err(e) => Err(e.to_string()),
        });
        match cipher {
            Ok((cipher, blob)) => {
                let answer = plan.finish(Some(Ok(&blob)));
                self.push_stream(now, payload::HANDSHAKE_RESPONSE, answer.response, 0);
                // The agent encrypts from the moment it has read our answer (§11).
                self.cipher = Some(cipher);
            }
            Err(detail) => {
                let answer = plan.finish(Some(Err(detail.clone())));
                let frame = self.stream_message(now, payload::HANDSHAKE_RESPONSE, answer.response).encode();
                self.next_seq += 1;
                self.last_words.push_back(frame);
                self.close(CloseReason::KmsFailed { key_id, detail });
            }
        }
    }

    /// Asks the agent to end the session (Flag `TerminateSession`, §6.3).
    pub(crate) fn terminate(&mut self, now: Instant) {
        if self.phase == Phase::Open {
            self.push_stream(now, payload::FLAG, flag::TERMINATE_SESSION.to_be_bytes().to_vec(), 0);
        }
    }

    /// The next frame to put on the websocket, as a binary message, copied into `out`.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.connected {
            return false;
        }
        if let Some(frame) = self.last_words.pop_front() {
            *out = frame;
            return true;
        }
        if self.phase == Phase::Closed {
            return false;
        }
        if let Some(ack) = self.acks.pop_front() {
            *out = ack;
            return true;
        }
        !self.paused && self.send.poll_transmit(now, out)
    }

    /// What happened, in order.
    #[must_use]
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`Session::handle_timeout`] next.
    #[must_use]
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let handshake = self.handshake_deadline.filter(|_| self.phase == Phase::Handshake);
        let grace = self.grace_deadline.filter(|_| self.phase == Phase::Handshake && !self.saw_handshake);
        let retransmit = self.send.next_timeout().filter(|_| self.connected && !self.paused);
        [handshake, grace, retransmit].into_iter().flatten().min()
    }

    /// Whether everything sent was acknowledged and nothing waits to go out.
    pub(crate) fn is_flushed(&self) -> bool {
        self.send.len() == 0 && self.acks.is_empty() && self.last_words.is_empty()
    }

    /// Whether the session has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Counters.
    pub(crate) fn stats(&self) -> Stats {
        Stats { retransmits: self.send.retransmits(), ..self.stats }
    }

    #[cfg(test)]
    /// Payload bytes in flight.
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.send.bytes_in_flight()
    }

    fn receive_stream(&mut self, now: Instant, msg: Message) {
        let (seq, id, msg_kind) = (msg.sequence, msg.id, msg.kind.clone());
        match self.recv.receive(msg) {
            Verdict::Deliver(messages) => {
                // Acked once accepted into the event queue, which the driver drains into stdout
                // before it reads the websocket again.
                self.queue_ack(now, &msg_kind, id, seq);
                for m in messages {
                    self.deliver(now, m);
                }
            }
            Verdict::Stored => {
                self.stats.out_of_order += 1;
                self.queue_ack(now, &msg_kind, id, seq);
            }
            Verdict::Duplicate => {
                self.stats.duplicates += 1;
                self.queue_ack(now, &msg_kind, id, seq);
            }
            Verdict::Overflow => {}
        }
    }

    /// Queues a stream message; `window_len` is what it counts against the flow-control window
    /// (the plaintext length of `Output`, 0 for control messages).
    fn push_stream(&mut self, now: Instant, payload_type: u32, payload: Vec<u8>, window_len: usize) {
        let msg = self.stream_message(now, payload_type, payload);
        self.send.push(self.next_seq, msg.encode(), window_len);
        self.next_seq += 1;
    }

    fn stream_message(&mut self, now: Instant, payload_type: u32, payload: Vec<u8>) -> Message {
        Message {
            kind: kind::INPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: self.created_ms(now),
            sequence: self.next_seq,
            flags: 0,
            id: self.next_id(),
            payload_type,
            payload,
        }
    }

    fn queue_ack(&mut self, now: Instant, acked_kind: &str, id: Uuid, seq: i64) {
        let ack = Acknowledge {
            message_type: acked_kind.to_string(),
            message_id: id.hyphenated().to_string(),
            sequence: seq,
            sequential: true,
        };
        let msg = Message {
            kind: kind::ACKNOWLEDGE.into(),
            schema_version: 1,
            created_ms: self.created_ms(now),
            sequence: 0,
            flags: FLAGS_ACK,
            id: self.next_id(),
            payload_type: 0,
            // A struct of strings and numbers always serialises.
            payload: serde_json::to_vec(&ack).expect("ack serialises"),
        };
        self.acks.push_back(msg.encode());
        self.stats.acks_sent += 1;
    }

    fn close(&mut self, reason: CloseReason) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.acks.clear();
            self.events.push_back(Event::Closed(reason));
        }
    }

    fn created_ms(&self, now: Instant) -> u64 {
        self.config.unix_ms.max(1) + now.saturating_duration_since(self.start).as_millis() as u64
    }

    /// A version-4 UUID from a splitmix64 stream: ids only need to be unique per session
    /// (receivers match acks on sequence numbers, §7.1).
    fn next_id(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        for half in bytes.chunks_mut(8) {
            self.ids = self.ids.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.ids;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            half.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}
