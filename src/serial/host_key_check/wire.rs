//! One direction of the relayed stream cut into what SSH sends in the clear before the first
//! `SSH_MSG_NEWKEYS`: lines up to the version line (RFC 4253 §4.2), then binary packets (§6)
//! with no MAC and no encryption. Cutting is unambiguous: a packet's length is its first field,
//! so the check and ssh see the same packets in the same order.

use std::ops::Range;

/// RFC 4253 §4.2: a line of the version exchange is at most 255 bytes, CR LF included.
const MAX_LINE: usize = 255;
/// RFC 4253 §6.1: implementations must handle packets of 35 000 bytes; the key exchange's are far
/// smaller (a KEXINIT is about 1.5 KiB, an 8192-bit DH-GEX group about 1 KiB). Anything larger is
/// not a key exchange this check follows.
const MAX_PACKET: usize = 35_000;
/// Bytes one direction may send before the host key is settled: an OpenSSH exchange takes about
/// 5 KiB each way, so 64 KiB leaves room for banners and IGNORE padding and still bounds memory.
pub(super) const MAX_PREAMBLE: usize = 64 * 1024;

/// Why a direction is not SSH as this check reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameError {
    /// No version line within the bound, or a line longer than RFC 4253 allows.
    NoVersion,
    /// A version line that is not SSH 2.
    NotSsh2,
    /// A packet length or padding length that no SSH packet has.
    BadPacket,
    /// More than [`MAX_PREAMBLE`] bytes without a verdict.
    TooLong,
}

/// The next whole unit of a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unit {
    /// A line before the version line (servers may send some, RFC 4253 §4.2).
    Line,
    /// The version line.
    Version,
    /// A packet whose payload (message number first, never empty) is `buf[payload]`.
    Packet {
        /// Where the payload is in [`Framer::buf`].
        payload: Range<usize>,
    },
}

/// Buffers one direction's bytes and cuts them into [`Unit`]s.
#[derive(Debug, Default)]
pub(super) struct Framer {
    /// Bytes received and not yet dropped by the owner.
    pub(super) buf: Vec<u8>,
    /// Bytes of `buf` already cut into units.
    pub(super) pos: usize,
    /// Bytes cut so far in this direction, dropped ones included (the bound).
    examined: usize,
    version_seen: bool,
}

impl Framer {
    /// Cuts the next whole unit after `pos`; `None` while it is incomplete.
    pub(super) fn next_unit(&mut self) -> Result<Option<Unit>, FrameError> {
        if self.examined > MAX_PREAMBLE {
            return Err(match self.version_seen {
                true => FrameError::TooLong,
                false => FrameError::NoVersion,
            });
        }
        let rest = &self.buf[self.pos..];
        if !self.version_seen {
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return match rest.len() > MAX_LINE {
                    true => Err(FrameError::NoVersion),
                    false => Ok(None),
                };
            };
            if end + 1 > MAX_LINE {
                return Err(FrameError::NoVersion);
            }
            let unit = match rest.starts_with(b"SSH-") {
                true if rest.starts_with(b"SSH-2.0-") || rest.starts_with(b"SSH-1.99-") => Unit::Version,
                true => return Err(FrameError::NotSsh2),
                false => Unit::Line,
            };
            self.version_seen = unit == Unit::Version;
            self.advance(end + 1);
            return Ok(Some(unit));
        }
        if rest.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let padding = rest[4] as usize;
        // At least the padding-length byte, one payload byte (the message number) and padding.
        if !(5..=MAX_PACKET).contains(&len) || padding + 1 >= len {
            return Err(FrameError::BadPacket);
        }
        if rest.len() < 4 + len {
            return Ok(None);
        }
        let payload = self.pos + 5..self.pos + 4 + len - padding;
        self.advance(4 + len);
        Ok(Some(Unit::Packet { payload }))
    }

    /// Removes and returns the bytes already cut into units.
    pub(super) fn take_examined(&mut self) -> Vec<u8> {
        let examined = self.buf.drain(..self.pos).collect();
        self.pos = 0;
        examined
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
        self.examined += n;
    }
}
