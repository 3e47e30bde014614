//! The semantic oracle of the fuzz target `serial_host_key`, a plain function so that a `#[test]`
//! runs it too (house style: CI only compiles the fuzz targets).
//!
//! The input does not feed bytes directly: it chooses a two-direction key exchange (both
//! KEXINITs' method lists and guess flags, which key the endpoint's real reply carries, extra
//! endpoint packets inserted anywhere, often carrying the expected key, the order of the two
//! directions and the chunking). A reference written independently of `kex.rs`, and as
//! permissive as ssh can be (every packet it does not wait for is ignored), names the packet
//! ssh takes as the reply. The property: the check says `Verified` only if that packet carries
//! the expected key, and it never passes on that packet's bytes before its verdict. For
//! well-formed exchanges without decoys the check must also decide (Verified or Mismatch).

use super::{HostKeyCheck, Verdict};
use crate::serial::endpoints::Fingerprint;

/// What one oracle run generated and decided (for tests that check what the inputs cover).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OracleRun {
    /// The check said `Verified`.
    pub verified: bool,
    /// The stream was a well-formed exchange with nothing inserted: the check had to decide.
    pub well_formed: bool,
    /// The reply (by the reference) carries the expected key.
    pub reply_has_expected_key: bool,
    /// Endpoint packets other than the reply that carry the expected key.
    pub decoys: usize,
}

/// Builds a stream from `data`, runs the check over it, and panics if the check is unsound.
pub fn fuzz_oracle(data: &[u8]) -> OracleRun {
    let mut input = Input { data, pos: 0 };
    let scenario = Scenario::generate(&mut input);
    scenario.run(&mut input)
}

/// The key the check expects; other key numbers stand for other keys.
const EXPECTED: u8 = 0;

const KEX_POOL: [&str; 11] = [
    "curve25519-sha256",
    "diffie-hellman-group-exchange-sha256",
    "ecdh-sha2-nistp256",
    "sntrup761x25519-sha512@openssh.com",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group-exchange-sha1",
    "ext-info-c",
    "ext-info-s",
    "kex-strict-c-v00@openssh.com",
    "kex-strict-s-v00@openssh.com",
    "gss-gex-sha1-toWM5Slw5Ew8Mqkay+al2g==",
];
const HOST_KEY_POOL: [&str; 2] = ["ssh-ed25519", "rsa-sha2-512"];
/// Extra endpoint packets: kex-range numbers (the decoys) most often.
const EXTRA_POOL: [u8; 16] = [31, 31, 31, 33, 33, 30, 32, 34, 20, 21, 2, 4, 3, 50, 94, 1];

/// Input bytes as choices; an exhausted input chooses 0 (the plainest option).
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    fn one_in(&mut self, n: u8) -> bool {
        self.byte() % n == 1
    }
}

/// The first field of a key-exchange message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// An Ed25519 host key, by number ([`EXPECTED`] or another).
    Key(u8),
    /// A DH-GEX prime: not a key.
    Prime,
}

/// One endpoint packet as the reference sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerPacket {
    msg: u8,
    field: Option<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Client,
    Server,
}

/// One unit on the wire, in the order the broker relays it.
#[derive(Debug, Clone)]
struct Event {
    dir: Dir,
    bytes: Vec<u8>,
    /// For endpoint packets: the index in [`Scenario::server_packets`].
    packet: Option<usize>,
}

struct Scenario {
    client_kex: Vec<&'static str>,
    server_kex: Vec<&'static str>,
    client_host_key: Vec<&'static str>,
    server_host_key: Vec<&'static str>,
    server_guess: bool,
    server_packets: Vec<ServerPacket>,
    events: Vec<Event>,
    well_formed: bool,
}

impl Scenario {
    fn generate(input: &mut Input<'_>) -> Scenario {
        let list = |input: &mut Input<'_>, strict: &'static str| {
            let mut names: Vec<&'static str> =
                (0..1 + input.below(4)).map(|_| KEX_POOL[input.below(KEX_POOL.len())]).collect();
            if !input.one_in(4) {
                names.push(strict);
            }
            names
        };
        let client_kex = list(input, "kex-strict-c-v00@openssh.com");
        let mut server_kex = list(input, "kex-strict-s-v00@openssh.com");
        // Most often the endpoint supports one of ssh's methods, somewhere in its list.
        if !input.one_in(4) {
            let at = input.below(server_kex.len() + 1);
            server_kex.insert(at, client_kex[input.below(client_kex.len())]);
        }
        let host_keys = |input: &mut Input<'_>| match input.below(3) {
            0 => vec![HOST_KEY_POOL[0]],
            1 => vec![HOST_KEY_POOL[1], HOST_KEY_POOL[0]],
            _ => vec![HOST_KEY_POOL[0], HOST_KEY_POOL[1]],
        };
        let (client_host_key, server_host_key) = (host_keys(input), host_keys(input));
        let (client_guess, server_guess) = (input.one_in(8), input.one_in(8));
        let reply_key = match input.one_in(2) {
            true => 1 + input.byte() % 3,
            false => EXPECTED,
        };
        let mut s = Scenario {
            client_kex,
            server_kex,
            client_host_key,
            server_host_key,
            server_guess,
            server_packets: Vec::new(),
            events: Vec::new(),
            well_formed: !client_guess && !server_guess,
        };
        // The exchange as ssh and a real endpoint run it.
        let gex = reference_plan(reference_method(&s.client_kex, &s.server_kex)).map(|plan| plan.len() == 2);
        s.well_formed &= gex.is_some();
        let mut server_first = vec![server_line(b"SSH-2.0-endpoint\r\n")];
        if input.one_in(4) {
            server_first.insert(0, server_line(b"a banner line\r\n"));
        }
        server_first.push(s.server_packet(ServerPacket { msg: 20, field: None }, input));
        let client_first = vec![
            client_event(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec()),
            client_event(packet(&kexinit(&s.client_kex, &s.client_host_key, client_guess, input.byte()))),
        ];
        match input.one_in(2) {
            true => s.events.extend(client_first.into_iter().chain(server_first)),
            false => s.events.extend(server_first.into_iter().chain(client_first)),
        }
        let reply = |msg| ServerPacket { msg, field: Some(Field::Key(reply_key)) };
        if gex == Some(true) {
            s.events.push(client_event(packet(&[34, 0, 0, 8, 0])));
            let group = match input.one_in(2) {
                true => Field::Key(EXPECTED),
                false => Field::Prime,
            };
            let group = s.server_packet(ServerPacket { msg: 31, field: Some(group) }, input);
            s.events.push(group);
            s.events.push(client_event(packet(&kex_message(32, Field::Prime))));
            let reply = s.server_packet(reply(33), input);
            s.events.push(reply);
        } else {
            s.events.push(client_event(packet(&kex_message(30, Field::Prime))));
            let reply = s.server_packet(reply(31), input);
            s.events.push(reply);
        }
        let newkeys = s.server_packet(ServerPacket { msg: 21, field: None }, input);
        s.events.push(newkeys);
        s.events.push(client_event(packet(&[21])));
        s.insert_extras(input);
        s
    }

    /// Inserts endpoint packets (decoys, chatter, junk) and swaps neighbours.
    fn insert_extras(&mut self, input: &mut Input<'_>) {
        let strict = self.client_kex.contains(&"kex-strict-c-v00@openssh.com")
            && self.server_kex.contains(&"kex-strict-s-v00@openssh.com");
        let extras = match input.one_in(3) {
            true => 0,
            false => input.below(5),
        };
        for _ in 0..extras {
            let msg = EXTRA_POOL[input.below(EXTRA_POOL.len())];
            let field = match input.below(4) {
                0 => Field::Key(1 + input.byte() % 3),
                1 => Field::Prime,
                _ => Field::Key(EXPECTED),
            };
            let packet = ServerPacket { msg, field: (msg >= 30).then_some(field) };
            // After the endpoint's version line: before it the bytes would be just another line.
            let version = self.events.iter().position(|e| e.dir == Dir::Server && e.bytes.starts_with(b"SSH-"));
            let at = version.expect("the generator always sends a version line") + 1;
            let at = at + input.below(self.events.len() + 1 - at);
            self.well_formed &= matches!(msg, 2 | 4) && !strict;
            let event = self.server_packet(packet, input);
            self.events.insert(at, event);
        }
        for i in 1..self.events.len() {
            if self.events[i - 1].dir != self.events[i].dir && input.one_in(8) {
                self.events.swap(i - 1, i);
                self.well_formed = false;
            }
        }
        // Packet numbers follow the endpoint's stream order.
        let mut order = Vec::new();
        for event in &mut self.events {
            if let Some(index) = event.packet.as_mut() {
                order.push(self.server_packets[*index].clone());
                *index = order.len() - 1;
            }
        }
        self.server_packets = order;
    }

    fn server_packet(&mut self, p: ServerPacket, input: &mut Input<'_>) -> Event {
        let payload = match (p.msg, p.field) {
            (20, _) => kexinit(&self.server_kex, &self.server_host_key, self.server_guess, input.byte()),
            (msg, Some(field)) => kex_message(msg, field),
            (msg, None) => vec![msg, 0, 0, 0, 0],
        };
        self.server_packets.push(p);
        Event { dir: Dir::Server, bytes: packet(&payload), packet: Some(self.server_packets.len() - 1) }
    }

    /// Feeds the events to a check in chunks and compares the verdict with the reference.
    fn run(&self, input: &mut Input<'_>) -> OracleRun {
        let expected_blob = key_blob(EXPECTED);
        let expected_key = russh::keys::PublicKey::from_bytes(&expected_blob).expect("a valid Ed25519 key");
        let fingerprint = expected_key.fingerprint(russh::keys::HashAlg::Sha256).to_string();
        let mut check = HostKeyCheck::new(Fingerprint::parse(&fingerprint).expect("a fingerprint ssh-key printed"));
        let (mut server_stream, mut packet_starts) = (Vec::new(), Vec::new());
        let mut forwarded = Vec::new();
        let mut forwarded_before_verdict = None;
        for event in &self.events {
            if event.dir == Dir::Server {
                if event.packet.is_some() {
                    packet_starts.push(server_stream.len());
                }
                server_stream.extend_from_slice(&event.bytes);
            }
            for chunk in event.bytes.chunks(1 + input.below(48)) {
                let before = forwarded.len();
                let verdict = match event.dir {
                    Dir::Client => check.handle_client(chunk),
                    Dir::Server => {
                        let (out, verdict) = check.handle_server(chunk);
                        forwarded.extend(out);
                        verdict
                    }
                };
                if verdict != Verdict::Pending && forwarded_before_verdict.is_none() {
                    forwarded_before_verdict = Some(before);
                }
            }
        }
        assert_eq!(forwarded, server_stream[..forwarded.len()], "forwarded bytes are the endpoint's, in order");
        let reply = ssh_reply(&self.server_packets, self.reference_skip(), self.reference_plan());
        let reply_has_expected_key = reply.is_some_and(|i| self.server_packets[i].field == Some(Field::Key(EXPECTED)));
        let verified = *check.verdict() == Verdict::Verified;
        let explain = || format!("{:?}\nreply index {reply:?}\nverdict {:?}", self.describe(), check.verdict());
        if verified {
            assert!(
                reply_has_expected_key,
                "Verified, but ssh's reply does not carry the expected key:\n{}",
                explain()
            );
            let start = packet_starts[reply.expect("checked above")];
            assert!(
                forwarded_before_verdict.unwrap_or(0) <= start,
                "the reply went on before its verdict:\n{}",
                explain()
            );
        }
        if self.well_formed {
            let decided = match reply_has_expected_key {
                true => verified,
                false => matches!(check.verdict(), Verdict::Mismatch { .. }),
            };
            assert!(decided, "a well-formed exchange must be decided by its reply's key:\n{}", explain());
        }
        let decoys = (self.server_packets.iter().enumerate())
            .filter(|(i, p)| Some(*i) != reply && p.field == Some(Field::Key(EXPECTED)))
            .count();
        OracleRun { verified, well_formed: self.well_formed, reply_has_expected_key, decoys }
    }

    fn reference_plan(&self) -> Option<&'static [u8]> {
        reference_plan(reference_method(&self.client_kex, &self.server_kex))
    }

    /// OpenSSH skips the endpoint's next packet when it announced a guess and the first kex and
    /// host key names differ.
    fn reference_skip(&self) -> bool {
        self.server_guess
            && (self.client_kex[0] != self.server_kex[0] || self.client_host_key[0] != self.server_host_key[0])
    }

    fn describe(&self) -> String {
        let events: Vec<String> = (self.events.iter())
            .map(|e| match e.packet {
                Some(i) => format!("S{:?}", self.server_packets[i]),
                None => format!("{:?}:{}", e.dir, e.bytes.get(5).copied().unwrap_or(0)),
            })
            .collect();
        format!(
            "client {:?} {:?}, server {:?} {:?} guess {}, events {events:?}",
            self.client_kex, self.client_host_key, self.server_kex, self.server_host_key, self.server_guess
        )
    }
}

/// The reference negotiation: ssh's first name that the endpoint also lists, skipping the
/// `ext-info-*` and `kex-strict-*` markers.
fn reference_method(client: &[&'static str], server: &[&'static str]) -> Option<&'static str> {
    let marker = |name: &str| name.starts_with("ext-info-") || name.starts_with("kex-strict-");
    client.iter().copied().find(|name| !marker(name) && server.contains(name))
}

/// The endpoint messages ssh waits for, in order, the last being the reply.
fn reference_plan(method: Option<&str>) -> Option<&'static [u8]> {
    let method = method?;
    if method.starts_with("diffie-hellman-group-exchange-") {
        return Some(&[31, 33]);
    }
    let init_reply = [
        "curve25519-sha256",
        "ecdh-sha2-nistp256",
        "sntrup761x25519-sha512@openssh.com",
        "diffie-hellman-group14-sha256",
    ];
    init_reply.contains(&method).then_some(&[31])
}

/// The packet ssh takes as the reply: after the endpoint's first KEXINIT (and the packet a wrong
/// guess makes it skip), the awaited messages in order; everything else ignored.
fn ssh_reply(packets: &[ServerPacket], skip_after_kexinit: bool, plan: Option<&[u8]>) -> Option<usize> {
    let plan = plan?;
    let kexinit = packets.iter().position(|p| p.msg == 20)?;
    let mut awaited = plan.iter().peekable();
    for (i, p) in packets.iter().enumerate().skip(kexinit + 1 + usize::from(skip_after_kexinit)) {
        if Some(&&p.msg) == awaited.peek() {
            awaited.next();
            if awaited.peek().is_none() {
                return Some(i);
            }
        }
    }
    None
}

fn server_line(line: &[u8]) -> Event {
    Event { dir: Dir::Server, bytes: line.to_vec(), packet: None }
}

fn client_event(bytes: Vec<u8>) -> Event {
    Event { dir: Dir::Client, bytes, packet: None }
}

/// RFC 4253 §6 framing with 4 to 11 bytes of padding to a multiple of 8.
fn packet(payload: &[u8]) -> Vec<u8> {
    let padding = 4 + (8 - (payload.len() + 9) % 8) % 8;
    let mut out = ((payload.len() + padding + 1) as u32).to_be_bytes().to_vec();
    out.push(padding as u8);
    out.extend_from_slice(payload);
    out.extend(std::iter::repeat_n(0u8, padding));
    out
}

fn string(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// The SSH encoding of Ed25519 key number `n`.
fn key_blob(n: u8) -> Vec<u8> {
    let mut out = string(b"ssh-ed25519");
    out.extend(string(&[n.wrapping_mul(37) ^ 0x5a; 32]));
    out
}

/// A key-exchange message: `msg`, its first field, then filler fields.
fn kex_message(msg: u8, field: Field) -> Vec<u8> {
    let mut out = vec![msg];
    out.extend(match field {
        Field::Key(n) => string(&key_blob(n)),
        Field::Prime => string(&[0x00, 0xff, 0xff, 0xff, 0xfb]),
    });
    out.extend(string(&[9; 32]));
    out.extend(string(b"signature"));
    out
}

fn kexinit(kex: &[&str], host_key: &[&str], guess: bool, cookie: u8) -> Vec<u8> {
    let mut out = vec![20];
    out.extend([cookie; 16]);
    out.extend(string(kex.join(",").as_bytes()));
    out.extend(string(host_key.join(",").as_bytes()));
    for list in ["aes128-ctr", "aes128-ctr", "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""] {
        out.extend(string(list.as_bytes()));
    }
    out.push(u8::from(guess));
    out.extend([0; 4]);
    out
}
