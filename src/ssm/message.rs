//! The data-channel message codec: a 120-byte big-endian header, then the payload
//! (`../shared/spec/ssm-data-channel.md` §5, pinned by the §16 vectors in the tests below).
//!
//! Writers follow the official peers exactly (header length 116, space-padded type, schema 1).
//! The reader is lenient where MGS is known to differ (header length 112, NUL padding) and strict
//! where it protects the byte stream: the payload length must match the frame and the SHA-256
//! digest must match the payload.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Size of the fixed header as written (`PayloadLength` ends at byte 120).
pub(crate) const HEADER_LEN: usize = 120;
/// `HeaderLength` as both official writers put it: the offset of `PayloadLength`.
const HEADER_LENGTH_FIELD: u32 = 116;
/// MGS's `channel_closed` frames reportedly omit `PayloadType` (§5, seen by an independent client).
const SHORT_HEADER_LENGTH_FIELD: u32 = 112;
const TYPE_LEN: usize = 32;

/// `MessageType` strings of the data channel (§6.1).
pub(crate) mod kind {
    /// Client → agent stream data (sequenced).
    pub(crate) const INPUT_STREAM_DATA: &str = "input_stream_data";
    /// Agent → client stream data (sequenced).
    pub(crate) const OUTPUT_STREAM_DATA: &str = "output_stream_data";
    /// Acknowledgement, both ways (unsequenced).
    pub(crate) const ACKNOWLEDGE: &str = "acknowledge";
    /// MGS: the session is over.
    pub(crate) const CHANNEL_CLOSED: &str = "channel_closed";
    /// MGS: the peer is back, resume sending.
    pub(crate) const START_PUBLICATION: &str = "start_publication";
    /// MGS: the peer went away, stop sending new data.
    pub(crate) const PAUSE_PUBLICATION: &str = "pause_publication";
}

/// `PayloadType` values (§6.2) that the client uses or reacts to.
// The protocol's vocabulary is named whole (spec §6), also the types only the shell and KMS
// front ends (issue 16) will read.
#[allow(dead_code)]
pub(crate) mod payload {
    /// Raw stream bytes.
    pub(crate) const OUTPUT: u32 = 1;
    /// Client → agent: the terminal's size (JSON, pty sessions).
    pub(crate) const SIZE: u32 = 3;
    /// Agent → client: the handshake request (JSON).
    pub(crate) const HANDSHAKE_REQUEST: u32 = 5;
    /// Client → agent: the handshake response (JSON).
    pub(crate) const HANDSHAKE_RESPONSE: u32 = 6;
    /// Agent → client: the handshake is done (JSON).
    pub(crate) const HANDSHAKE_COMPLETE: u32 = 7;
    /// Agent → client: KMS challenge (JSON).
    pub(crate) const ENC_CHALLENGE_REQUEST: u32 = 8;
    /// Client → agent: the answered KMS challenge (JSON).
    pub(crate) const ENC_CHALLENGE_RESPONSE: u32 = 9;
    /// A 4-byte big-endian flag (§6.3).
    pub(crate) const FLAG: u32 = 10;
    /// Agent → client: standard error bytes (non-interactive commands).
    pub(crate) const STDERR: u32 = 11;
    /// Agent → client: `EXIT_CODE: <n>`.
    pub(crate) const EXIT_CODE: u32 = 12;
}

/// Flag payload values (§6.3).
#[allow(dead_code)]
pub(crate) mod flag {
    /// Client: the local connection went away (basic port forwarding).
    pub(crate) const DISCONNECT_TO_PORT: u32 = 1;
    /// Client: end the session now.
    pub(crate) const TERMINATE_SESSION: u32 = 2;
    /// Agent: dialing the destination port failed.
    pub(crate) const CONNECT_TO_PORT_ERROR: u32 = 3;
}

/// `Flags` header bits (§5): SYN on an agent's seq 0, SYN|FIN on acks.
pub(crate) const FLAGS_ACK: u64 = 3;

/// One decoded data-channel message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// `MessageType`, without padding.
    pub kind: String,
    /// `SchemaVersion` (1 in every known message).
    pub schema_version: u32,
    /// `CreatedDate`, milliseconds since the Unix epoch; never 0.
    pub created_ms: u64,
    /// `SequenceNumber`: the sender's counter for stream data, 0 otherwise.
    pub sequence: i64,
    /// `Flags` bit set.
    pub flags: u64,
    /// `MessageId`.
    pub id: Uuid,
    /// `PayloadType` (0 when the header has no such field or it is unused).
    pub payload_type: u32,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Why bytes from the network are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Shorter than the header it announces.
    #[error("frame of {len} bytes is shorter than its header")]
    Truncated {
        /// Frame length.
        len: usize,
    },
    /// `HeaderLength` is neither 116 nor 112.
    #[error("unsupported header length {0}")]
    HeaderLength(u32),
    /// `MessageType` is empty or not ASCII.
    #[error("message type is empty or not ASCII")]
    BadType,
    /// `CreatedDate` is 0, which both official peers reject.
    #[error("message has no creation date")]
    NoDate,
    /// `PayloadLength` does not match the bytes after the header.
    #[error("payload length {declared} does not match the {actual} bytes after the header")]
    Length {
        /// `PayloadLength` field.
        declared: u32,
        /// Bytes actually there.
        actual: usize,
    },
    /// The SHA-256 in the header is not that of the payload.
    #[error("payload digest mismatch")]
    Digest,
}

impl Message {
    /// Encodes the message as the official writers do (§5): header length 116, type padded with
    /// spaces, digest over the payload.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&HEADER_LENGTH_FIELD.to_be_bytes());
        let mut kind = [b' '; TYPE_LEN];
        let n = self.kind.len().min(TYPE_LEN);
        kind[..n].copy_from_slice(&self.kind.as_bytes()[..n]);
        out.extend_from_slice(&kind);
        out.extend_from_slice(&self.schema_version.to_be_bytes());
        out.extend_from_slice(&self.created_ms.to_be_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&swap_halves(self.id.as_bytes()));
        out.extend_from_slice(&Sha256::digest(&self.payload));
        out.extend_from_slice(&self.payload_type.to_be_bytes());
        // A payload over 4 GiB cannot be built by this crate (chunks are ≤ 64 KiB).
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Decodes one websocket frame. Never panics, whatever the bytes.
    pub(crate) fn decode(frame: &[u8]) -> Result<Message, DecodeError> {
        let truncated = || DecodeError::Truncated { len: frame.len() };
        let header_len = be_u32(frame, 0).ok_or_else(truncated)?;
        if header_len != HEADER_LENGTH_FIELD && header_len != SHORT_HEADER_LENGTH_FIELD {
            return Err(DecodeError::HeaderLength(header_len));
        }
        let hl = header_len as usize;
        let payload_len = be_u32(frame, hl).ok_or_else(truncated)?;
        let raw_kind = &frame[4..4 + TYPE_LEN];
        let kind = std::str::from_utf8(raw_kind)
            .ok()
            .map(|s| s.trim_matches(|c| c == ' ' || c == '\0'))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(DecodeError::BadType)?
            .to_string();
        let created_ms = be_u64(frame, 40).ok_or_else(truncated)?;
        if created_ms == 0 {
            return Err(DecodeError::NoDate);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&frame[64..80]);
        let payload = &frame[hl + 4..];
        if payload.len() != payload_len as usize {
            return Err(DecodeError::Length { declared: payload_len, actual: payload.len() });
        }
        // The official client skips validation of publication messages; their payload is unused.
        let publication = kind == kind::START_PUBLICATION || kind == kind::PAUSE_PUBLICATION;
        if !payload.is_empty() && !publication && Sha256::digest(payload).as_slice() != &frame[80..112] {
            return Err(DecodeError::Digest);
        }
        Ok(Message {
            kind,
            schema_version: be_u32(frame, 36).ok_or_else(truncated)?,
            created_ms,
            sequence: be_u64(frame, 48).ok_or_else(truncated)? as i64,
            flags: be_u64(frame, 56).ok_or_else(truncated)?,
            id: Uuid::from_bytes(swap_halves(&id)),
            payload_type: if hl >= HEADER_LENGTH_FIELD as usize {
                be_u32(frame, 112).ok_or_else(truncated)?
            } else {
                0
            },
            payload: payload.to_vec(),
        })
    }
}

/// The wire puts the UUID's least-significant half first (§5).
fn swap_halves(b: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&b[8..]);
    out[8..].copy_from_slice(&b[..8]);
    out
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Fuzz entry point: decoding never panics, and whatever decodes re-encodes to a frame that
/// decodes to the same message.
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        let again = Message::decode(&m.encode()).expect("a decoded message re-encodes validly");
        assert_eq!(m, again);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap()).collect()
    }

    fn uuid(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    // §16.1: input_stream_data, seq 0, Output "hello".
    const V1: &str = "00 00 00 74 69 6e 70 75 74 5f 73 74 72 65 61 6d 5f 64 61 74 61 20 20 20 20 20 20 20 20 20 20 20
        20 20 20 20 00 00 00 01 00 00 01 8b cf e5 68 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        88 99 aa bb cc dd ee ff 00 11 22 33 44 55 66 77 2c f2 4d ba 5f b0 a3 0e 26 e8 3b 2a c5 b9 e2 9e
        1b 16 1e 5c 1f a7 42 5e 73 04 33 62 93 8b 98 24 00 00 00 01 00 00 00 05 68 65 6c 6c 6f";

    // §16.3: input_stream_data, seq 42, Flag DisconnectToPort.
    const V3: &str = "00 00 00 74 69 6e 70 75 74 5f 73 74 72 65 61 6d 5f 64 61 74 61 20 20 20 20 20 20 20 20 20 20 20
        20 20 20 20 00 00 00 01 00 00 01 8b cf e5 69 c8 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 00
        fe dc ba 98 76 54 32 10 fe dc ba 98 76 54 32 10 b4 07 11 a8 8c 70 39 75 6f b8 a7 38 27 ea be 2c
        0f e5 a0 34 6c a7 e0 a1 04 ad c0 fc 76 4f 52 8d 00 00 00 0a 00 00 00 04 00 00 00 01";

    const V2_PAYLOAD: &str = r#"{"AcknowledgedMessageType":"output_stream_data","AcknowledgedMessageId":"11111111-2222-3333-4444-555555555555","AcknowledgedMessageSequenceNumber":7,"IsSequentialMessage":true}"#;
    // §16.2: the first 128 bytes of the acknowledge vector (header + start of the payload).
    const V2_HEAD: &str =
        "00 00 00 74 61 63 6b 6e 6f 77 6c 65 64 67 65 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20 20
        20 20 20 20 00 00 00 01 00 00 01 8b cf e5 68 7b 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03
        dd dd ee ee ee ee ee ee aa aa aa aa bb bb cc cc 6f a9 fc 6d 6d 20 82 66 fe c7 9b 66 18 69 f3 ff
        dd 28 9d 69 b5 29 a9 5d a8 93 46 b4 d2 71 b3 69 00 00 00 00 00 00 00 b0 7b 22 41 63 6b 6e 6f 77";

    fn v1() -> Message {
        Message {
            kind: kind::INPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_000,
            sequence: 0,
            flags: 0,
            id: uuid("00112233-4455-6677-8899-aabbccddeeff"),
            payload_type: payload::OUTPUT,
            payload: b"hello".to_vec(),
        }
    }

    fn v2() -> Message {
        Message {
            kind: kind::ACKNOWLEDGE.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_123,
            sequence: 0,
            flags: FLAGS_ACK,
            id: uuid("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
            payload_type: 0,
            payload: V2_PAYLOAD.as_bytes().to_vec(),
        }
    }

    fn v3() -> Message {
        Message {
            kind: kind::INPUT_STREAM_DATA.into(),
            schema_version: 1,
            created_ms: 1_700_000_000_456,
            sequence: 42,
            flags: 0,
            id: uuid("fedcba98-7654-3210-fedc-ba9876543210"),
            payload_type: payload::FLAG,
            payload: flag::DISCONNECT_TO_PORT.to_be_bytes().to_vec(),
        }
    }

    #[test]
    fn vector_16_1_both_ways() {
        assert_eq!(v1().encode(), hex(V1));
        assert_eq!(Message::decode(&hex(V1)).unwrap(), v1());
    }

    #[test]
    fn vector_16_2_both_ways() {
        assert_eq!(V2_PAYLOAD.len(), 176);
        let mut full = hex(V2_HEAD);
        full.extend_from_slice(&V2_PAYLOAD.as_bytes()[8..]);
        assert_eq!(v2().encode(), full);
        assert_eq!(Message::decode(&full).unwrap(), v2());
    }

    #[test]
    fn vector_16_3_both_ways() {
        assert_eq!(v3().encode(), hex(V3));
        assert_eq!(Message::decode(&hex(V3)).unwrap(), v3());
    }

    #[test]
    fn short_header_and_nul_padding_from_mgs() {
        // channel_closed as MGS reportedly sends it: HL 112, NUL padding, no PayloadType.
        let body = br#"{"SessionId":"s-1","Output":""}"#;
        let mut f = Vec::new();
        f.extend_from_slice(&112u32.to_be_bytes());
        let mut t = [0u8; 32];
        t[..14].copy_from_slice(b"channel_closed");
        f.extend_from_slice(&t);
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&5u64.to_be_bytes());
        f.extend_from_slice(&0u64.to_be_bytes());
        f.extend_from_slice(&3u64.to_be_bytes());
        f.extend_from_slice(&[7u8; 16]);
        f.extend_from_slice(&Sha256::digest(body));
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        let m = Message::decode(&f).unwrap();
        assert_eq!(m.kind, kind::CHANNEL_CLOSED);
        assert_eq!(m.payload_type, 0);
        assert_eq!(m.payload, body);
    }

    #[test]
    fn rejects_what_would_corrupt_the_stream() {
        let good = hex(V1);
        let mut bad_digest = good.clone();
        bad_digest[80] ^= 1;
        assert_eq!(Message::decode(&bad_digest), Err(DecodeError::Digest));
        let mut extra = good.clone();
        extra.push(b'!');
        assert!(matches!(Message::decode(&extra), Err(DecodeError::Length { declared: 5, actual: 6 })));
        assert!(matches!(Message::decode(&good[..100]), Err(DecodeError::Truncated { .. })));
        let mut no_date = good.clone();
        no_date[40..48].fill(0);
        assert_eq!(Message::decode(&no_date), Err(DecodeError::NoDate));
        let mut hl = good.clone();
        hl[3] = 0x75;
        assert_eq!(Message::decode(&hl), Err(DecodeError::HeaderLength(0x75)));
        let mut blank = good;
        blank[4..36].fill(b' ');
        assert_eq!(Message::decode(&blank), Err(DecodeError::BadType));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic property test; the fuzz target explores further.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let base = hex(V1);
        for round in 0..20_000 {
            let mut f = if round % 2 == 0 { base.clone() } else { vec![0u8; (next() % 300) as usize] };
            for _ in 0..(next() % 8) {
                if f.is_empty() {
                    break;
                }
                let i = (next() as usize) % f.len();
                f[i] = next() as u8;
            }
            f.truncate((next() as usize) % (f.len() + 1).max(1) + if round % 3 == 0 { 0 } else { f.len() });
            fuzz_decode(&f);
        }
        for len in 0..HEADER_LEN + 2 {
            fuzz_decode(&base[..len.min(base.len())]);
        }
    }
}
