//! The SSM Session Manager data channel, natively (`../shared/spec/ssm-data-channel.md`).
//!
//! No I/O and no clock in this module except `driver.rs` (checked by CI): the protocol is a
//! state machine ([`session::Session`]) fed with frames, bytes and `now`, in the quinn-proto
//! style; [`driver`] moves bytes between it, the websocket and stdin/stdout.
//!
//! ```text
//!  stdin ──send()──▶ Session ──poll_transmit()──▶ websocket ──▶ MGS ──▶ agent ──▶ sshd
//!  stdout ◀─poll_event()── Session ◀─handle_frame()── websocket ◀──────────────────┘
//! ```
//!
//! - [`message`]: the binary frame codec (pinned by the spec's §16 vectors);
//! - [`handshake`]: JSON payloads (open frame, acks, handshake, KMS action and challenge, `Size`,
//!   `channel_closed`);
//! - [`session_kind`]: what StartSession started (port, shell, command) and the matching
//!   `SessionType`;
//! - [`crypto`]: KMS data-key encryption of payloads (AES-256-GCM), given the key;
//! - `send_buffer`: unacknowledged messages, per-message retransmission, the flow-control window;
//! - `recv_buffer`: reordering and duplicate detection;
//! - [`session`]: the state machine; [`driver`]: the websocket, the local streams and resume;
//!   `channel`: the driver's vocabulary without I/O (traits, settings, errors, outcomes).

mod channel;
pub(crate) mod crypto;
pub(crate) mod driver;
pub(crate) mod handshake;
pub(crate) mod message;
mod recv_buffer;
mod send_buffer;
pub(crate) mod session;
pub(crate) mod session_kind;
#[cfg(test)]
mod tests;
