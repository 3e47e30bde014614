//! `Pair`: client and agent joined by two virtual links whose frames can be lost, duplicated and
//! reordered; time only moves when nothing else can happen.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::AgentSim;
use crate::ssm::message::{Message, kind};
use crate::ssm::session::{CloseReason, Config, Event, Session};

#[derive(Clone, Copy, Default)]
struct Faults {
    /// Per mille of frames lost.
    loss: u64,
    /// Per mille of frames delivered twice.
    duplicate: u64,
    /// Up to this much extra delay per frame (reorders frames).
    jitter_ms: u64,
    /// Lose only acks going to the agent (the official client's lost-ack scenario).
    acks_to_agent_only: bool,
}

struct Link {
    frames: Vec<(Instant, u64, Vec<u8>)>,
    order: u64,
}

impl Link {
    fn new() -> Self {
        Link { frames: Vec::new(), order: 0 }
    }

    fn push(&mut self, at: Instant, frame: Vec<u8>) {
        self.order += 1;
        self.frames.push((at, self.order, frame));
    }

    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        let i = (0..self.frames.len()).filter(|&i| self.frames[i].0 <= now).min_by_key(|&i| {
            let (at, order, _) = &self.frames[i];
            (*at, *order)
        })?;
        Some(self.frames.swap_remove(i).2)
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.frames.iter().map(|f| f.0).min()
    }
}

struct Pair {
    now: Instant,
    client: Session,
    agent: AgentSim,
    to_agent: Link,
    to_client: Link,
    faults: Faults,
    rng: u64,
    upload: Vec<u8>,
    uploaded: usize,
    downloaded: Vec<u8>,
    events: Vec<Event>,
    max_in_flight: usize,
    latency: Duration,
}

impl Pair {
    fn new(faults: Faults) -> Self {
        Self::with_config(faults, Config::default())
    }

    fn with_config(faults: Faults, config: Config) -> Self {
        let now = crate::ssm::driver::test_epoch();
        Pair {
            now,
            client: Session::new(config, now),
            agent: AgentSim::new(now),
            to_agent: Link::new(),
            to_client: Link::new(),
            faults,
            rng: 0x2545_f491_4f6c_dd1d,
            upload: Vec::new(),
            uploaded: 0,
            downloaded: Vec::new(),
            events: Vec::new(),
            max_in_flight: 0,
            latency: Duration::from_millis(5),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Puts a frame on a link, subject to the faults.
    fn transmit(&mut self, to_agent: bool, frame: Vec<u8>) {
        let is_ack = Message::decode(&frame).is_ok_and(|m| m.kind == kind::ACKNOWLEDGE);
        let eligible = !self.faults.acks_to_agent_only || (to_agent && is_ack);
        if eligible && self.random() % 1000 < self.faults.loss {
            return;
        }
        let copies = if eligible && self.random() % 1000 < self.faults.duplicate { 2 } else { 1 };
        for _ in 0..copies {
            let jitter = if self.faults.jitter_ms > 0 { self.random() % self.faults.jitter_ms } else { 0 };
            let at = self.now + self.latency + Duration::from_millis(jitter);
            let link = if to_agent { &mut self.to_agent } else { &mut self.to_client };
            link.push(at, frame.clone());
        }
    }

    /// Runs until nothing is left to do or `limit` of virtual time passed.
    fn drive(&mut self, limit: Duration) {
        let end = self.now + limit;
        let mut buf = Vec::new();
        while self.now <= end {
            let mut progress = false;
            if self.uploaded < self.upload.len() && self.client.can_send() {
                let end = (self.uploaded + 64 * 1024).min(self.upload.len());
                let n = self.client.send(self.now, &self.upload[self.uploaded..end]);
                self.uploaded += n;
                progress |= n > 0;
            }
            self.max_in_flight = self.max_in_flight.max(self.client.bytes_in_flight());
            while self.client.poll_transmit(self.now, &mut buf) {
                self.transmit(true, std::mem::take(&mut buf));
                progress = true;
            }
            while let Some(frame) = self.agent.out.pop_front() {
                self.transmit(false, frame);
                progress = true;
            }
            while let Some(ev) = self.client.poll_event() {
                match ev {
                    Event::Data(d) => self.downloaded.extend_from_slice(&d),
                    other => self.events.push(other),
                }
                progress = true;
            }
            if let Some(f) = self.to_agent.pop_due(self.now) {
                self.agent.handle_frame(self.now, &f);
                progress = true;
            }
            if let Some(f) = self.to_client.pop_due(self.now) {
                let _ = self.client.handle_frame(self.now, &f);
                progress = true;
            }
            if progress {
                continue;
            }
            let next = [
                self.to_agent.next_arrival(),
                self.to_client.next_arrival(),
                self.client.poll_timeout(),
                self.agent.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return };
            self.now = self.now.max(next);
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
            if self.agent.next_timeout().is_some_and(|t| t <= self.now) {
                self.agent.handle_timeout(self.now);
            }
        }
    }

    fn ready(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Ready { .. }))
    }
}

/// A message MGS itself originates (unsequenced, Flags 3).
fn service_message(k: &str, payload: &[u8]) -> Vec<u8> {
    Message {
        kind: k.into(),
        schema_version: 1,
        created_ms: 5,
        sequence: 0,
        flags: 3,
        id: Uuid::nil(),
        payload_type: 0,
        payload: payload.to_vec(),
    }
    .encode()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8).collect()
}

fn transfer(faults: Faults, up: usize, down: usize) -> Pair {
    let mut p = Pair::new(faults);
    p.drive(Duration::from_secs(5));
    assert!(p.ready(), "handshake did not complete: {:?}", p.events);
    p.upload = pattern(up, 1);
    let download = pattern(down, 7);
    p.agent.send_data(p.now, &download);
    p.drive(Duration::from_secs(600));
    assert_eq!(p.agent.received.len(), up, "upload length");
    assert!(p.agent.received == p.upload, "upload bytes differ");
    assert_eq!(p.downloaded.len(), down, "download length");
    assert!(p.downloaded == download, "download bytes differ");
    assert!(p.client.is_flushed(), "client still has unacked data");
    assert_eq!(p.agent.unacked(), 0, "agent still has unacked data");
    assert_eq!(p.agent.discarded, 0, "client sent data before the handshake completed");
    p
}

#[test]
fn clean_link_delivers_both_ways_without_resends() {
    let p = transfer(Faults::default(), 2 << 20, 1 << 20);
    assert_eq!(p.client.stats().retransmits, 0);
    assert_eq!(p.agent.resends, 0);
    assert!(p.max_in_flight <= Config::default().max_in_flight_bytes, "window exceeded: {}", p.max_in_flight);
    assert!(p.max_in_flight > 0);
}

#[test]
fn loss_duplication_and_reordering_deliver_every_byte_once_in_order() {
    let faults = Faults { loss: 100, duplicate: 50, jitter_ms: 20, ..Faults::default() };
    let p = transfer(faults, 512 << 10, 256 << 10);
    let s = p.client.stats();
    assert!(s.retransmits > 0 && s.duplicates > 0 && s.out_of_order > 0, "{s:?}");
    assert!(p.max_in_flight <= Config::default().max_in_flight_bytes);
}

#[test]
fn many_seeds_of_heavy_faults() {
    for seed in 1..12u64 {
        let faults = Faults { loss: 200, duplicate: 100, jitter_ms: 50, ..Faults::default() };
        let mut p = Pair::new(faults);
        p.rng ^= seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        p.drive(Duration::from_secs(30));
        assert!(p.ready(), "seed {seed}: no handshake");
        p.upload = pattern(40_000 + seed as usize * 977, seed as u8);
        let download = pattern(30_000 + seed as usize * 1511, seed as u8 ^ 0x55);
        p.agent.send_data(p.now, &download);
        p.drive(Duration::from_secs(3600));
        assert!(p.agent.received == p.upload, "seed {seed}: upload differs");
        assert!(p.downloaded == download, "seed {seed}: download differs");
    }
}

#[test]
fn lost_acks_are_answered_by_re_acks_so_the_agent_stops_resending() {
    let faults = Faults { loss: 300, acks_to_agent_only: true, ..Faults::default() };
    let p = transfer(faults, 1024, 200 << 10);
    assert!(p.agent.resends > 0);
    assert!(p.client.stats().duplicates > 0, "the agent's resends were not seen as duplicates");
    // Every resend got its re-ack: the agent's buffer drained (transfer() checked it).
}

#[test]
fn reconnect_resends_everything_unacked() {
    let mut p = Pair::new(Faults::default());
    p.drive(Duration::from_secs(5));
    p.upload = pattern(300 << 10, 3);
    let download = pattern(100 << 10, 9);
    p.agent.send_data(p.now, &download);
    // 7 ms: the agent has everything and acked it, but the acks are still on the wire.
    p.drive(Duration::from_millis(7));
    assert!(p.client.bytes_in_flight() > 0);
    assert!(!p.to_client.frames.is_empty());
    // The websocket drops: everything on the wire is gone, nothing moves for 3 s.
    p.to_agent.frames.clear();
    p.to_client.frames.clear();
    p.client.handle_disconnect();
    let mut buf = Vec::new();
    assert!(!p.client.poll_transmit(p.now, &mut buf));
    p.now += Duration::from_secs(3);
    p.client.handle_reconnect(p.now);
    p.drive(Duration::from_secs(120));
    assert!(p.agent.received == p.upload);
    assert!(p.downloaded == download);
}

#[test]
fn no_data_before_the_handshake_completes() {
    let mut p = Pair::new(Faults::default());
    assert!(!p.client.can_send());
    assert_eq!(p.client.send(p.now, b"SSH-2.0-early\r\n"), 0);
    p.drive(Duration::from_secs(1));
    assert!(p.ready());
    assert_eq!(
        p.events[0],
        Event::Ready { agent_version: "3.3.1142.0".into(), customer_message: String::new(), encrypted: false }
    );
    assert!(p.client.can_send());
}

#[test]
fn handshake_timeout_closes() {
    let mut p = Pair::new(Faults::default());
    p.agent.completes_handshake = false;
    p.drive(Duration::from_secs(60));
    assert_eq!(p.events, vec![Event::Closed(CloseReason::HandshakeTimeout)]);
}

#[test]
fn single_newline_is_sent_unchanged() {
    let mut p = Pair::new(Faults::default());
    p.drive(Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(p.client.send(p.now, b"\n"), 1);
        let mut frame = Vec::new();
        assert!(p.client.poll_transmit(p.now, &mut frame));
        assert_eq!(Message::decode(&frame).unwrap().payload, b"\n");
        p.transmit(true, frame);
        p.drive(Duration::from_secs(1));
    }
    assert_eq!(p.agent.received, b"\n\n\n");
}

#[test]
fn corrupted_frame_is_dropped_unacked_then_resent() {
    let mut p = Pair::new(Faults::default());
    p.drive(Duration::from_secs(1));
    p.agent.send_data(p.now, b"payload");
    let mut frame = p.agent.out.pop_back().unwrap();
    frame[90] ^= 0xff;
    p.transmit(false, frame);
    p.drive(Duration::from_millis(50));
    assert_eq!(p.client.stats().bad_frames, 1);
    assert!(p.downloaded.is_empty());
    // The agent's head-only resend brings the intact frame.
    p.drive(Duration::from_secs(2));
    assert_eq!(p.downloaded, b"payload");
    assert!(p.agent.resends >= 1);
}

#[test]
fn channel_closed_ends_the_session() {
    let mut p = Pair::new(Faults::default());
    p.drive(Duration::from_secs(1));
    let body = br#"{"SessionId":"s-1","Output":"Your session timed out due to inactivity."}"#;
    p.agent.send_raw(service_message(kind::CHANNEL_CLOSED, body));
    p.drive(Duration::from_secs(1));
    assert_eq!(
        p.events.last(),
        Some(&Event::Closed(CloseReason::ChannelClosed { output: "Your session timed out due to inactivity.".into() }))
    );
    assert!(p.client.is_closed());
    assert_eq!(p.client.send(p.now, b"x"), 0);
}

#[test]
fn pause_publication_holds_new_data_until_start() {
    let mut p = Pair::new(Faults::default());
    p.drive(Duration::from_secs(1));
    let publication = |k: &str| service_message(k, b"");
    p.client.handle_frame(p.now, &publication(kind::PAUSE_PUBLICATION)).unwrap();
    assert_eq!(p.client.send(p.now, b"held"), 4);
    let mut buf = Vec::new();
    assert!(!p.client.poll_transmit(p.now, &mut buf));
    p.client.handle_frame(p.now, &publication(kind::START_PUBLICATION)).unwrap();
    assert!(p.client.poll_transmit(p.now, &mut buf));
    p.transmit(true, buf);
    p.drive(Duration::from_secs(1));
    assert_eq!(p.agent.received, b"held");
}

#[test]
fn window_is_also_counted_in_messages() {
    let config = Config { max_in_flight_messages: 4, ..Config::default() };
    let mut p = Pair::with_config(Faults::default(), config);
    p.drive(Duration::from_secs(1));
    let mut accepted = 0;
    for _ in 0..10 {
        accepted += p.client.send(p.now, b"k");
    }
    assert_eq!(accepted, 4, "one-byte writes must not bypass the window");
}
