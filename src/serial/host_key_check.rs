//! Checking the serial endpoint's host key inside a stream the broker only relays (sans-IO).
//!
//! With `proxy --route serial` the user's own ssh speaks SSH to the endpoint, and the broker
//! only pipes bytes. The SSH key exchange is in the clear up to `SSH_MSG_NEWKEYS` (RFC 4253
//! §7–8), and the server's reply to the key exchange carries its host key as its first field, in
//! every method OpenSSH uses (`SSH_MSG_KEXDH_REPLY` / `SSH_MSG_KEX_ECDH_REPLY` = 31 for
//! Diffie-Hellman, ECDH, Curve25519 and the post-quantum hybrids, `SSH_MSG_KEX_DH_GEX_REPLY` = 33
//! for group exchange). So the broker reads the server's side of the stream, passes the version
//! line and every packet before the reply on at once, holds the reply until the key in it has the
//! published fingerprint, and cuts the connection otherwise. ssh cannot finish the key exchange
//! without that reply, so nothing it sends afterwards (its authentication) reaches a wrong server.
//!
//! Message 31 is also `SSH_MSG_KEX_DH_GEX_GROUP`, whose first field is a prime, not a key: a 31
//! whose first field does not parse as a public key is passed on and the check keeps waiting.

use russh::keys::{HashAlg, PublicKey};

use super::endpoints::Fingerprint;

/// The version exchange may be preceded by other lines; RFC 4253 §4.2 caps a line at 255 bytes.
const MAX_LINE: usize = 255;
/// RFC 4253 §6.1: implementations must handle packets of 35 000 bytes; the key exchange's are
/// far smaller. Anything larger is not SSH.
const MAX_PACKET: usize = 35_000;
/// Bytes before the host key arrives: a server that sends more is not behaving like SSH.
const MAX_PREAMBLE: usize = 64 * 1024;

const MSG_NEWKEYS: u8 = 21;
const MSG_KEX_REPLY: u8 = 31;
const MSG_KEX_DH_GEX_REPLY: u8 = 33;

/// What the check has decided so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The host key has not arrived yet.
    Pending,
    /// The host key has the expected fingerprint; everything from now on passes unchecked.
    Verified,
    /// The host key has another fingerprint: close the connection.
    Mismatch {
        /// The fingerprint the server presented.
        found: String,
    },
    /// The server's bytes are not an SSH key exchange this check understands: close the connection.
    Malformed(&'static str),
}

/// The check, fed with the server's bytes.
#[derive(Debug)]
pub struct HostKeyCheck {
    expected: Fingerprint,
    buf: Vec<u8>,
    /// Bytes of `buf` already examined (and safe to pass on).
    parsed: usize,
    seen_version: bool,
    verdict: Verdict,
}

impl HostKeyCheck {
    /// A check that accepts only a host key with `expected` as its SHA-256 fingerprint.
    pub fn new(expected: Fingerprint) -> Self {
        HostKeyCheck { expected, buf: Vec::new(), parsed: 0, seen_version: false, verdict: Verdict::Pending }
    }

    /// Takes bytes from the server; returns what may go on to the client now, and the verdict.
    /// After `Verified` every byte goes straight through; after a failure nothing does.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, Verdict) {
        match self.verdict {
            Verdict::Verified => return (data.to_vec(), Verdict::Verified),
            Verdict::Mismatch { .. } | Verdict::Malformed(_) => return (Vec::new(), self.verdict.clone()),
            Verdict::Pending => {}
        }
        self.buf.extend_from_slice(data);
        self.verdict = self.advance();
        let forward = match self.verdict {
            Verdict::Verified => std::mem::take(&mut self.buf),
            Verdict::Pending => {
                let ready: Vec<u8> = self.buf.drain(..self.parsed).collect();
                self.parsed = 0;
                ready
            }
            _ => {
                self.buf.clear();
                Vec::new()
            }
        };
        (forward, self.verdict.clone())
    }

    /// The verdict so far.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Examines whole lines and packets after `parsed`; stops at the first incomplete one.
    fn advance(&mut self) -> Verdict {
        while !self.seen_version {
            if self.parsed > MAX_PREAMBLE {
                return Verdict::Malformed("the endpoint did not start with an SSH version line");
            }
            let rest = &self.buf[self.parsed..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return match rest.len() > MAX_LINE {
                    true => Verdict::Malformed("the endpoint did not start with an SSH version line"),
                    false => Verdict::Pending,
                };
            };
            if end > MAX_LINE {
                return Verdict::Malformed("the endpoint did not start with an SSH version line");
            }
            self.seen_version = rest.starts_with(b"SSH-");
            if self.seen_version && !rest.starts_with(b"SSH-2.0-") && !rest.starts_with(b"SSH-1.99-") {
                return Verdict::Malformed("the endpoint does not speak SSH 2");
            }
            self.parsed += end + 1;
        }
        loop {
            let rest = &self.buf[self.parsed..];
            if self.parsed > MAX_PREAMBLE {
                return Verdict::Malformed("the endpoint sent too much before its host key");
            }
            if rest.len() < 5 {
                return Verdict::Pending;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let padding = rest[4] as usize;
            if !(5..=MAX_PACKET).contains(&len) || padding + 1 >= len {
                return Verdict::Malformed("the endpoint sent a packet that is not SSH");
            }
            if rest.len() < 4 + len {
                return Verdict::Pending;
            }
            let payload = &rest[5..4 + len - padding];
            match payload[0] {
                MSG_NEWKEYS => return Verdict::Malformed("the endpoint finished the key exchange without a host key"),
                MSG_KEX_REPLY | MSG_KEX_DH_GEX_REPLY => {
                    if let Some(key) = first_string(&payload[1..]).and_then(|b| PublicKey::from_bytes(b).ok()) {
                        let found = key.fingerprint(HashAlg::Sha256).to_string();
                        return match found == self.expected.as_str() {
                            true => Verdict::Verified,
                            false => Verdict::Mismatch { found },
                        };
                    }
                    // SSH_MSG_KEX_DH_GEX_GROUP: a prime, not a key.
                }
                _ => {}
            }
            self.parsed += 4 + len;
        }
    }
}

/// The first SSH `string` (u32 length, bytes) of `data`.
fn first_string(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    data.get(4..4 + len)
}

/// Feeds arbitrary bytes through a check (the fuzz target's entry point): never panics.
pub fn fuzz_feed(data: &[u8]) {
    let expected = Fingerprint::parse("SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E").expect("valid");
    let mut check = HostKeyCheck::new(expected);
    for chunk in data.chunks(7) {
        let (_, verdict) = check.feed(chunk);
        if verdict != Verdict::Pending {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn packet(payload: &[u8]) -> Vec<u8> {
        // RFC 4253 §6: padding of at least 4 bytes, total a multiple of 8.
        let mut padding = 8 - (payload.len() + 5) % 8;
        if padding < 4 {
            padding += 8;
        }
        let len = (payload.len() + padding + 1) as u32;
        let mut out = len.to_be_bytes().to_vec();
        out.push(padding as u8);
        out.extend_from_slice(payload);
        out.extend(std::iter::repeat_n(0u8, padding));
        out
    }

    fn string(b: &[u8]) -> Vec<u8> {
        let mut out = (b.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(b);
        out
    }

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap().public_key().clone()
    }

    /// What a server sends up to and including its key-exchange reply.
    fn server_side(host_key: &PublicKey, reply_msg: u8) -> (Vec<u8>, usize) {
        let mut out = b"a banner line\r\nSSH-2.0-OpenSSH_9.2p1 Debian\r\n".to_vec();
        let mut kexinit = vec![20u8];
        kexinit.extend_from_slice(&[7; 16]);
        kexinit.extend(string(b"curve25519-sha256"));
        out.extend(packet(&kexinit));
        let before_reply = out.len();
        let mut reply = vec![reply_msg];
        reply.extend(string(&host_key.to_bytes().unwrap()));
        reply.extend(string(&[9; 32]));
        reply.extend(string(b"signature"));
        out.extend(packet(&reply));
        (out, before_reply)
    }

    fn fp(key: &PublicKey) -> Fingerprint {
        Fingerprint::parse(&key.fingerprint(HashAlg::Sha256).to_string()).unwrap()
    }

    #[test]
    fn right_key_passes_everything_byte_by_byte() {
        let k = key();
        let (stream, before_reply) = server_side(&k, MSG_KEX_REPLY);
        let mut check = HostKeyCheck::new(fp(&k));
        let mut out = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            let (fwd, verdict) = check.feed(std::slice::from_ref(b));
            out.extend(fwd);
            // Nothing of the reply goes on before the whole reply is checked.
            if i + 1 < stream.len() {
                assert_eq!(verdict, Verdict::Pending);
                assert!(out.len() <= before_reply);
            }
        }
        assert_eq!(check.verdict(), &Verdict::Verified);
        assert_eq!(out, stream);
        // The version line and KEXINIT went on before the reply arrived (ssh needs them first).
        let mut check = HostKeyCheck::new(fp(&k));
        let (fwd, verdict) = check.feed(&stream[..before_reply + 3]);
        assert_eq!((fwd.len(), verdict), (before_reply, Verdict::Pending));
        let (fwd, _) = check.feed(&stream[before_reply + 3..]);
        assert_eq!(fwd, &stream[before_reply..]);
        assert_eq!(check.feed(b"encrypted").0, b"encrypted");
    }

    #[test]
    fn wrong_key_is_held_back_and_named() {
        let (k, other) = (key(), key());
        let (stream, before_reply) = server_side(&k, MSG_KEX_DH_GEX_REPLY);
        let mut check = HostKeyCheck::new(fp(&other));
        let (fwd, verdict) = check.feed(&stream[..before_reply]);
        assert_eq!((fwd.len(), verdict), (before_reply, Verdict::Pending));
        let (fwd, verdict) = check.feed(&stream[before_reply..]);
        assert!(fwd.is_empty(), "the reply must not reach ssh");
        assert_eq!(verdict, Verdict::Mismatch { found: k.fingerprint(HashAlg::Sha256).to_string() });
        assert_eq!(check.feed(b"more").0, b"");
    }

    #[test]
    fn dh_group_exchange_prime_is_not_a_key() {
        let k = key();
        let mut stream = b"SSH-2.0-x\r\n".to_vec();
        let mut group = vec![MSG_KEX_REPLY];
        group.extend(string(&[0x00, 0xff, 0xff, 0xff, 0xff]));
        group.extend(string(&[2]));
        stream.extend(packet(&group));
        let (reply, _) = server_side(&k, MSG_KEX_DH_GEX_REPLY);
        let reply_start = reply.windows(4).position(|w| w == b"SSH-").unwrap();
        let after_version = reply[reply_start..].iter().position(|&b| b == b'\n').unwrap() + reply_start + 1;
        stream.extend_from_slice(&reply[after_version..]);
        let mut check = HostKeyCheck::new(fp(&k));
        assert_eq!(check.feed(&stream).1, Verdict::Verified);
    }

    #[test]
    fn not_ssh_is_refused() {
        let expected = fp(&key());
        // Lines before the version line are allowed (RFC 4253 §4.2): wait for more.
        let mut check = HostKeyCheck::new(expected.clone());
        assert_eq!(check.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n").1, Verdict::Pending);
        let mut check = HostKeyCheck::new(expected.clone());
        let many_lines = b"junk\n".repeat(20_000);
        assert!(matches!(check.feed(&many_lines).1, Verdict::Malformed(_)));
        let cases: [&[u8]; 4] = [
            b"SSH-1.5-old\r\n",
            &[b'x'; 300],
            b"SSH-2.0-x\r\n\xff\xff\xff\xff\x04",
            b"SSH-2.0-x\r\n\0\0\0\x0c\x0a\x15\0\0\0\0\0\0\0\0\0\0",
        ];
        for case in cases {
            let mut check = HostKeyCheck::new(expected.clone());
            let (_, verdict) = check.feed(case);
            assert!(matches!(verdict, Verdict::Malformed(_)), "{:?}: {verdict:?}", String::from_utf8_lossy(case));
        }
        // Random bytes never panic.
        for seed in 0..200u32 {
            let data: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8).collect();
            fuzz_feed(&data);
            let mut with_version = b"SSH-2.0-x\n".to_vec();
            with_version.extend(&data);
            fuzz_feed(&with_version);
        }
    }
}
