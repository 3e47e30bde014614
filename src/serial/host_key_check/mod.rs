//! Checking the serial endpoint's host key inside a stream the broker only relays (sans-IO).
//!
//! With `proxy --route serial` the user's own ssh speaks SSH to the endpoint and the broker pipes
//! the bytes. The key exchange is in the clear up to the first `SSH_MSG_NEWKEYS` (RFC 4253
//! §7–8), and the endpoint's reply to it carries the host key as its first field in every method
//! followed here. The broker cannot check the reply's signature (it never learns the shared
//! secret), so the check is sound only if it inspects exactly the packet ssh will take as the
//! reply: then ssh verifies that the key it was shown signed the exchange, and the broker has
//! verified that the key is AWS's. To know which packet that is, the check follows the key
//! exchange from both sides, as ssh does:
//!
//! ```text
//!  both directions: lines ─▶ version line ─▶ packets (wire.rs, bounded: MAX_PREAMBLE)
//!  ssh's KEXINIT + endpoint's KEXINIT ─▶ method = ssh's first one the endpoint lists (kex.rs)
//!    30/31 methods (ECDH, Curve25519, fixed DH, sntrup, ML-KEM):  ssh 30 ─▶ endpoint 31 = reply
//!    DH-GEX:  ssh 34 ─▶ endpoint 31 (group, no key) ─▶ ssh 32 ─▶ endpoint 33 = reply
//!  reply's key has the published fingerprint ─▶ Verified, else Mismatch; anything else ─▶ Malformed
//! ```
//!
//! Why this is the packet ssh uses, and why everything else fails closed:
//! - ssh interprets 30–49 only after both KEXINITs, with the negotiated method's numbering;
//!   earlier it answers them with UNIMPLEMENTED and ignores them. A decoy 31 carrying AWS's key
//!   before the endpoint's KEXINIT (or any 30–49 the method does not expect at that point) is
//!   therefore refused, never taken as the reply.
//! - The reply can only be genuine after ssh's own message (30, or 32 after 34 and the group)
//!   has been relayed: the endpoint needs it to compute the reply. The broker relays ssh's bytes
//!   itself and shows them to the check first ([`HostKeyCheck::handle_client`]), so a reply
//!   before them is refused.
//! - `first_kex_packet_follows` makes ssh skip a packet on a wrong guess: an endpoint that sets it
//!   is refused (in these methods the endpoint never speaks first, so it has nothing to guess),
//!   and ssh's own wrong guess is refused rather than modelled.
//! - With strict KEX (`kex-strict-c-v00@openssh.com` from ssh and `kex-strict-s-v00@openssh.com`
//!   from the endpoint) nothing but key-exchange messages may come before NEWKEYS; without it
//!   IGNORE, DEBUG and UNIMPLEMENTED may. Any other message, a second KEXINIT, or a NEWKEYS before
//!   the reply is refused. Only the first key exchange counts: the check ends with the reply.
//!
//! The endpoint's bytes go on to ssh as soon as they are examined and harmless (ssh needs the
//! version line and KEXINIT to start); the reply is held until its key is checked, so on a wrong
//! key ssh never gets a reply and sends no authentication. ssh's bytes are only observed: the
//! caller relays them unchanged.

mod kex;
mod oracle;
#[cfg(test)]
mod tests;
mod wire;

use russh::keys::{HashAlg, PublicKey};

use self::kex::{Exchange, Role};
use self::wire::{FrameError, Framer, Unit};
use super::endpoints::Fingerprint;

#[doc(hidden)]
pub use self::oracle::{OracleRun, fuzz_oracle};

/// What the check has decided so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The host key has not arrived yet.
    Pending,
    /// The host key has the expected fingerprint; everything from now on passes unchecked.
    Verified,
    /// The host key has another fingerprint: close the connection.
    Mismatch {
        /// The fingerprint the server presented.
        found: String,
    },
    /// The bytes are not an SSH key exchange this check can follow: close the connection.
    Malformed(&'static str),
}

/// The check, fed with both directions of the relayed stream.
///
/// Call [`handle_client`](Self::handle_client) with ssh's bytes as they are relayed to the
/// endpoint, and [`handle_server`](Self::handle_server) with the endpoint's bytes; pass on to ssh
/// only what `handle_server` returns.
#[derive(Debug)]
pub(crate) struct HostKeyCheck {
    expected: Fingerprint,
    server: Framer,
    client: Framer,
    exchange: Exchange,
    verdict: Verdict,
}

impl HostKeyCheck {
    /// A check that accepts only a host key with `expected` as its SHA-256 fingerprint.
    pub(crate) fn new(expected: Fingerprint) -> Self {
        HostKeyCheck {
            expected,
            server: Framer::default(),
            client: Framer::default(),
            exchange: Exchange::new(),
            verdict: Verdict::Pending,
        }
    }

    /// Takes bytes from the endpoint; returns what may go on to ssh now, and the verdict.
    /// After `Verified` every byte goes straight through; after a failure nothing does.
    #[must_use]
    pub(crate) fn handle_server(&mut self, data: &[u8]) -> (Vec<u8>, Verdict) {
        match self.verdict {
            Verdict::Verified => return (data.to_vec(), Verdict::Verified),
            Verdict::Mismatch { .. } | Verdict::Malformed(_) => return (Vec::new(), self.verdict.clone()),
            Verdict::Pending => {}
        }
        self.server.buf.extend_from_slice(data);
        self.verdict = self.advance_server();
        let forward = match self.verdict {
            // The reply and whatever came after it (NEWKEYS, encrypted packets).
            Verdict::Verified => std::mem::take(&mut self.server.buf),
            Verdict::Pending => self.server.take_examined(),
            Verdict::Mismatch { .. } | Verdict::Malformed(_) => Vec::new(),
        };
        if self.verdict != Verdict::Pending {
            self.server = Framer::default();
            self.client = Framer::default();
        }
        (forward, self.verdict.clone())
    }

    /// Observes bytes ssh sent towards the endpoint (the caller relays them unchanged, before or
    /// as it calls this, and before it reads further from the endpoint); returns the verdict,
    /// which becomes a failure if ssh's side is not a key exchange this check can follow.
    pub(crate) fn handle_client(&mut self, data: &[u8]) -> Verdict {
        if self.verdict != Verdict::Pending {
            return self.verdict.clone();
        }
        self.client.buf.extend_from_slice(data);
        if let Err(why) = self.advance_client() {
            self.verdict = Verdict::Malformed(why);
            self.server = Framer::default();
            self.client = Framer::default();
        } else {
            drop(self.client.take_examined());
        }
        self.verdict.clone()
    }

    /// The verdict so far.
    pub(crate) fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Examines the endpoint's whole lines and packets; stops at the first incomplete one or the reply.
    fn advance_server(&mut self) -> Verdict {
        loop {
            let payload = match self.server.next_unit() {
                Err(e) => return Verdict::Malformed(server_frame_error(e)),
                Ok(None) => return Verdict::Pending,
                Ok(Some(Unit::Line | Unit::Version)) => continue,
                Ok(Some(Unit::Packet { payload })) => &self.server.buf[payload],
            };
            match self.exchange.handle_server_packet(payload) {
                Err(why) => return Verdict::Malformed(why),
                Ok(Role::Harmless) => {}
                Ok(Role::Reply) => return judge(&self.expected, payload),
            }
        }
    }

    /// Examines ssh's whole lines and packets.
    fn advance_client(&mut self) -> Result<(), &'static str> {
        loop {
            let payload = match self.client.next_unit().map_err(client_frame_error)? {
                None => return Ok(()),
                Some(Unit::Line | Unit::Version) => continue,
                Some(Unit::Packet { payload }) => &self.client.buf[payload],
            };
            self.exchange.handle_client_packet(payload)?;
        }
    }
}

/// The verdict on the reply: its first field is the host key (RFC 4253 §8, RFC 4419 §3, RFC 5656 §4).
fn judge(expected: &Fingerprint, reply: &[u8]) -> Verdict {
    let Some(key) = reply.get(1..).and_then(first_string).and_then(|blob| PublicKey::from_bytes(blob).ok()) else {
        return Verdict::Malformed("the endpoint's key-exchange reply carries no host key this check can read");
    };
    let found = key.fingerprint(HashAlg::Sha256).to_string();
    match found == expected.as_str() {
        true => Verdict::Verified,
        false => Verdict::Mismatch { found },
    }
}

/// The first SSH `string` (u32 length, bytes) of `data`.
fn first_string(data: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    data.get(4..4usize.checked_add(len)?)
}

fn server_frame_error(e: FrameError) -> &'static str {
    match e {
        FrameError::NoVersion => "the endpoint did not start with an SSH version line",
        FrameError::NotSsh2 => "the endpoint does not speak SSH 2",
        FrameError::BadPacket => "the endpoint sent a packet that is not SSH",
        FrameError::TooLong => "the endpoint sent too much before its host key",
    }
}

fn client_frame_error(e: FrameError) -> &'static str {
    match e {
        FrameError::NoVersion => "ssh did not start with an SSH version line",
        FrameError::NotSsh2 => "ssh does not speak SSH 2",
        FrameError::BadPacket => "ssh sent a packet that is not SSH",
        FrameError::TooLong => "ssh sent too much before the endpoint's host key",
    }
}

/// Feeds arbitrary bytes through a check, as the endpoint's side and as ssh's (the fuzz target's
/// entry point for unstructured input): never panics.
pub fn fuzz_feed(data: &[u8]) {
    let expected = Fingerprint::parse("SHA256:h2AaGAWO4Hathhtm6ezs3Bj7udgUxi2qTrHjZAwCW6E").expect("a valid literal");
    let mut check = HostKeyCheck::new(expected.clone());
    for chunk in data.chunks(7) {
        if check.handle_server(chunk).1 != Verdict::Pending {
            break;
        }
    }
    let mut check = HostKeyCheck::new(expected);
    for (i, chunk) in data.chunks(5).enumerate() {
        let verdict = match i % 2 {
            0 => check.handle_client(chunk),
            _ => check.handle_server(chunk).1,
        };
        if verdict != Verdict::Pending {
            break;
        }
    }
}
