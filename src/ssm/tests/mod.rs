//! Two-party tests on virtual time: our client [`Session`] against [`AgentSim`], a model of the
//! real agent's reliability rules (§9.2 agent column, head-only resends, §13), over a lossy,
//! duplicating, reordering link. No sockets, no sleeps.

mod pair;
mod shell;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::handshake::Acknowledge;
use super::message::{FLAGS_ACK, Message, kind, payload};

/// The agent side, as §13 describes it: handshake first, ack after handling, re-ack duplicates,
/// buffer out-of-order messages, resend only the oldest unacked message on a 100 ms tick.
pub(super) struct AgentSim {
    expected: i64,
    pending: BTreeMap<i64, Message>,
    next_seq: i64,
    outgoing: VecDeque<(i64, Vec<u8>, Instant)>,
    pub(super) out: VecDeque<Vec<u8>>,
    pub(super) handshake_done: bool,
    /// Client stream bytes the agent wrote to its TCP connection.
    pub(super) received: Vec<u8>,
    /// Client stream bytes the agent discarded because they came before HandshakeComplete.
    pub(super) discarded: usize,
    pub(super) flags: Vec<u32>,
    next_tick: Instant,
    pub(super) resends: u64,
    /// Reply to the handshake with a HandshakeComplete (false: stall forever).
    pub(super) completes_handshake: bool,
}

const AGENT_RTO: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(100);

impl AgentSim {
    pub(super) fn new(now: Instant) -> Self {
        let mut a = AgentSim {
            expected: 0,
            pending: BTreeMap::new(),
            next_seq: 0,
            outgoing: VecDeque::new(),
            out: VecDeque::new(),
            handshake_done: false,
            received: Vec::new(),
            discarded: 0,
            flags: Vec::new(),
            next_tick: now + TICK,
            resends: 0,
            completes_handshake: true,
        };
        let request = br#"{"AgentVersion":"3.3.1142.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22"}}}]}"#;
        a.send_stream(now, payload::HANDSHAKE_REQUEST, request.to_vec());
        a
    }

    /// Sends stream bytes to the client in 1024-byte messages.
    pub(super) fn send_data(&mut self, now: Instant, data: &[u8]) {
        for chunk in data.chunks(1024) {
            self.send_stream(now, payload::OUTPUT, chunk.to_vec());
        }
    }

    pub(super) fn send_raw(&mut self, frame: Vec<u8>) {
        self.out.push_back(frame);
    }

    pub(super) fn unacked(&self) -> usize {
        self.outgoing.len()
    }

    fn send_stream(&mut self, now: Instant, payload_type: u32, payload: Vec<u8>) {
        let m = Message {
            kind: kind::OUTPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence: self.next_seq,
            flags: u64::from(self.next_seq == 0),
            id: Uuid::from_u128(0xa000 + self.next_seq as u128),
            payload_type,
            payload,
        };
        self.next_seq += 1;
        let frame = m.encode();
        self.outgoing.push_back((m.sequence, frame.clone(), now));
        self.out.push_back(frame);
    }

    pub(super) fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        // The real agent does not check digests (§5); our sim decodes strictly, which only
        // matters for corrupted frames, and then behaves as "not received".
        let Ok(m) = Message::decode(frame) else { return };
        match m.kind.as_str() {
            kind::ACKNOWLEDGE => {
                let ack: Acknowledge = serde_json::from_slice(&m.payload).unwrap();
                self.outgoing.retain(|(seq, _, _)| *seq != ack.sequence);
            }
            kind::INPUT_STREAM_DATA => {
                if m.sequence < self.expected {
                    self.ack(&m);
                } else if m.sequence > self.expected {
                    self.ack(&m);
                    self.pending.insert(m.sequence, m);
                } else {
                    self.handle_in_order(now, &m);
                    self.ack(&m);
                    self.expected += 1;
                    while let Some(next) = self.pending.remove(&self.expected) {
                        self.handle_in_order(now, &next);
                        self.expected += 1;
                    }
                }
            }
            _ => {}
        }
    }

    fn handle_in_order(&mut self, now: Instant, m: &Message) {
        match m.payload_type {
            payload::HANDSHAKE_RESPONSE if self.completes_handshake => {
                let complete = br#"{"HandshakeTimeToComplete":1000000,"CustomerMessage":""}"#;
                self.send_stream(now, payload::HANDSHAKE_COMPLETE, complete.to_vec());
                self.handshake_done = true;
            }
            payload::OUTPUT if self.handshake_done => self.received.extend_from_slice(&m.payload),
            payload::OUTPUT => self.discarded += m.payload.len(),
            payload::FLAG => self.flags.push(u32::from_be_bytes(m.payload[..4].try_into().unwrap())),
            _ => {}
        }
    }

    fn ack(&mut self, m: &Message) {
        let body = Acknowledge {
            message_type: m.kind.clone(),
            message_id: m.id.to_string(),
            sequence: m.sequence,
            sequential: true,
        };
        let ack = Message {
            kind: kind::ACKNOWLEDGE.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence: 0,
            flags: FLAGS_ACK,
            id: Uuid::from_u128(0xb000),
            payload_type: 0,
            payload: serde_json::to_vec(&body).unwrap(),
        };
        self.out.push_back(ack.encode());
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        (!self.outgoing.is_empty()).then_some(self.next_tick)
    }

    /// The agent's 100 ms resend tick: only the oldest unacked message is considered.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        while self.next_tick <= now {
            self.next_tick += TICK;
        }
        if let Some((_, frame, sent)) = self.outgoing.front_mut()
            && now.saturating_duration_since(*sent) >= AGENT_RTO
        {
            *sent = now;
            self.resends += 1;
            let frame = frame.clone();
            self.out.push_back(frame);
        }
    }
}
