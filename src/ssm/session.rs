//! The client side of one data-channel session as a state machine: no I/O, no clock.
//!
//! Inputs are `handle_*` and `send`; after each input the driver calls every `poll_*` until it
//! returns nothing: `poll_transmit`, then `poll_event`, then `poll_timeout`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::handshake::{self, Acknowledge, ChannelClosed, HandshakeComplete, HandshakeRequest};
use super::message::{DecodeError, FLAGS_ACK, Message, flag, kind, payload};
use super::recv_buffer::{RecvBuffer, Verdict};
use super::send_buffer::SendBuffer;

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
    },
    /// Bytes from the instance, in order, each exactly once.
    Data(Vec<u8>),
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

    /// Timers: retransmissions and the handshake deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
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

    /// Queues stream bytes for the instance. Returns how many were accepted (flow control).
    pub(crate) fn send(&mut self, now: Instant, data: &[u8]) -> usize {
        let take = data.len().min(self.send_capacity());
        for chunk in data[..take].chunks(self.config.chunk_size) {
            self.push_stream(now, payload::OUTPUT, chunk.to_vec());
        }
        self.stats.bytes_out += take as u64;
        take
    }

    /// Asks the agent to end the session (Flag `TerminateSession`, §6.3).
    pub(crate) fn terminate(&mut self, now: Instant) {
        if self.phase == Phase::Open {
            self.push_stream(now, payload::FLAG, flag::TERMINATE_SESSION.to_be_bytes().to_vec());
        }
    }

    /// The next frame to put on the websocket, as a binary message, copied into `out`.
    #[must_use]
    pub(crate) fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        if !self.connected || self.phase == Phase::Closed {
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
        let retransmit = self.send.next_timeout().filter(|_| self.connected && !self.paused);
        [handshake, retransmit].into_iter().flatten().min()
    }

    /// Whether everything sent was acknowledged and nothing waits to go out.
    pub(crate) fn is_flushed(&self) -> bool {
        self.send.len() == 0 && self.acks.is_empty()
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

    fn deliver(&mut self, now: Instant, m: Message) {
        match m.payload_type {
            payload::OUTPUT => {
                self.stats.bytes_in += m.payload.len() as u64;
                if !m.payload.is_empty() {
                    self.events.push_back(Event::Data(m.payload));
                }
            }
            payload::HANDSHAKE_REQUEST => {
                let Ok(request) = serde_json::from_slice::<HandshakeRequest>(&m.payload) else {
                    self.close(CloseReason::HandshakeRefused("the agent sent an unreadable handshake request".into()));
                    return;
                };
                let answer = handshake::answer(&request);
                self.push_stream(now, payload::HANDSHAKE_RESPONSE, answer.response);
                if let Some(refusal) = answer.refusal {
                    // The agent ends the session on a failed action; if MGS does not say so
                    // soon, stop waiting.
                    self.refusal = Some(refusal);
                    self.handshake_deadline = Some(now + Duration::from_secs(3));
                }
                self.agent_version = request.agent_version;
            }
            payload::HANDSHAKE_COMPLETE if self.phase == Phase::Handshake && self.refusal.is_none() => {
                let done: Option<HandshakeComplete> = serde_json::from_slice(&m.payload).ok();
                self.phase = Phase::Open;
                self.handshake_deadline = None;
                self.events.push_back(Event::Ready {
                    agent_version: std::mem::take(&mut self.agent_version),
                    customer_message: done.map(|d| d.customer_message).unwrap_or_default(),
                });
            }
            payload::FLAG if m.payload == flag::CONNECT_TO_PORT_ERROR.to_be_bytes() => {
                self.close(CloseReason::ConnectToPortError);
            }
            // KMS challenges (never for port sessions), stderr and exit codes (command sessions).
            _ => {}
        }
    }

    fn push_stream(&mut self, now: Instant, payload_type: u32, payload: Vec<u8>) {
        let len = if payload_type == payload::OUTPUT { payload.len() } else { 0 };
        let msg = Message {
            kind: kind::INPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: self.created_ms(now),
            sequence: self.next_seq,
            flags: 0,
            id: self.next_id(),
            payload_type,
            payload,
        };
        self.send.push(self.next_seq, msg.encode(), len);
        self.next_seq += 1;
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
