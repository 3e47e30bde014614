//! EC2 serial console double (`../shared/spec/aws-apis.md` §2.1, §5): the SSH endpoint behind
//! `<instance-id>.port0@serial-console.ec2-instance-connect.<region>.aws`, a russh server on
//! `127.0.0.1` with a host key generated at lab start.
//!
//! ```text
//!  client ──API──► api/instance_connect.rs  SendSerialConsoleSSHPublicKey starts a session (session.rs)
//!  client ══SSH══► service.rs ─► handler.rs  publickey auth: <id>.port0 + that session's key (< 60 s)
//!                                   └─► getty.rs  "<host> login: " / "Password: " (line.rs edits)
//!                                          └─► shell.rs  a real login shell on a real pty
//! ```
//!
//! - `session`: one serial session per instance: the push opens it, one authenticated
//!   connection at a time uses it, its end starts the teardown that refuses new pushes
//!   (spec §5.1), and the log of connections (`Lab::serial_connections`);
//! - `service`: the listener and the russh server configuration (publickey only);
//! - `handler`: authentication and the channel requests (one `session` channel with `pty-req`,
//!   `shell` and `window-change`; `exec`, `subsystem`, forwarding and agents are refused);
//! - `getty`: what a serial getty on `ttyS0` shows: banner, login prompt, password prompt;
//! - `line`: the getty's line editor (no I/O);
//! - `shell`: the login shell on a pseudo-terminal, relayed to the channel, killed with its
//!   session when the client goes.
//!
//! Differences from AWS worth knowing: on AWS the instance's getty and shell live on the
//! instance, so a shell left logged in survives a disconnect and the next connection lands in
//! it; here the shell is killed when the SSH connection ends, and every connection starts at the
//! login prompt. A BREAK (`break` channel request, RFC 4335) is answered by russh itself, which
//! logs it as an unknown request and replies with failure only when a reply is wanted. Not
//! modelled: the 1-hour session limit, maintenance cuts, SysRq, other serial ports.

mod getty;
mod handler;
mod line;
pub(crate) mod service;
pub(crate) mod session;
pub(crate) mod shell;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use getty::{BANNER, LOGIN_INCORRECT, PASSWORD_PROMPT, login_prompt};

/// How long a key pushed with `SendSerialConsoleSSHPublicKey` authenticates, in lab-clock time
/// from the push (spec §2.1, §5.1).
pub const KEY_VALIDITY: Duration = Duration::from_secs(60);

/// How long after a session's connection ends a new push for that instance is refused with
/// `SerialConsoleSessionLimitExceededException` (spec §5.1: "Teardown takes 30 s").
pub const TEARDOWN: Duration = Duration::from_secs(30);

/// The only serial port that exists (spec §2.1: `SerialPort` range 0..0).
pub const SERIAL_PORT: u32 = 0;

/// Fault knobs of the serial-console double (`State::set_serial_faults`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialFaults {
    /// The first SSH connection that authenticates after each key push is disconnected by the
    /// server right after authentication, before any channel data. The serial session is not
    /// ended by that: a reconnect with the same key works while the key is valid (AWS: the
    /// first connection sometimes closes for no reason).
    pub spurious_first_close: bool,
    /// After the SSH connection of a session ends, a new push for that instance is refused until
    /// this much real time has passed (default [`TEARDOWN`]).
    pub teardown: Duration,
    /// Added to a pushed key's age when the endpoint checks it, as if the client connected this
    /// much later (61 s: every login with a fresh key is refused as expired).
    pub key_age: Duration,
}

impl Default for SerialFaults {
    fn default() -> Self {
        SerialFaults { spurious_first_close: false, teardown: TEARDOWN, key_age: Duration::ZERO }
    }
}

/// What the lab knows about one TCP connection to the serial endpoint (`Lab::serial_connections`),
/// in the order they came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialConnInfo {
    /// The instance the user name names (`<instance-id>.port<N>`), once the client tried to
    /// authenticate with such a name.
    pub instance: Option<String>,
    /// The user name of the last authentication attempt; `None` when the connection never
    /// reached user authentication (e.g. the client did not like the host key).
    pub user: Option<String>,
    /// A public key was accepted.
    pub authenticated: bool,
    /// The server closed this connection right after authenticating it
    /// ([`SerialFaults::spurious_first_close`]).
    pub spurious_close: bool,
    /// The OS user logged in at the console's prompt with the right password (the last one, if
    /// several logged in one after another).
    pub logged_in: Option<String>,
}
