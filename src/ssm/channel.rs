//! The vocabulary of the data-channel driver, without I/O: where to connect, the traits the
//! driver is served through (resume, KMS data keys), its settings and errors, how a session
//! ended, and the texts that describe a close. The driver itself (`driver.rs`, the one file of
//! `ssm/` that does I/O) re-exports these.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::crypto::DataKey;
use super::handshake::{KeyRequest, SessionIds};
use super::session::{CloseReason, Stats};
use super::session_kind::SessionKind;
use crate::redact::Redacted;
use crate::text::printable;

/// Where and how to open the data channel.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// `StreamUrl`, used as given (§2) once its scheme is checked.
    pub url: Redacted<String>,
    /// `TokenValue` (a bearer token: never logged).
    pub token: Redacted<String>,
}

/// Gets a new token for the same session (`ResumeSession`).
pub(crate) trait Resume {
    /// `Ok(None)` when the service says the session is over.
    fn resume(&mut self) -> impl Future<Output = Result<Option<Connection>, BoxError>>;
}

/// Generates KMS data keys (`GenerateDataKey`, §11.2), so the driver does not depend on the SDK.
pub(crate) trait DataKeys {
    /// A data key of [`crypto::DATA_KEY_LEN`](super::crypto::DATA_KEY_LEN) bytes for
    /// `request.key_id`, bound to `request.context`. The error is shown to the user: it names the
    /// key and what to do.
    fn data_key(&mut self, request: &KeyRequest) -> impl Future<Output = Result<DataKey, BoxError>>;
}

/// For sessions that never encrypt (port sessions): any request is an error.
pub(crate) struct NoDataKeys;

impl DataKeys for NoDataKeys {
    async fn data_key(&mut self, request: &KeyRequest) -> Result<DataKey, BoxError> {
        Err(format!("no KMS client for key {}", printable(&request.key_id)).into())
    }
}

/// Errors from a [`Resume`] or [`DataKeys`] implementation.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Driver settings.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// TLS settings for `wss://` (roots including `AWS_CA_BUNDLE`).
    pub tls: Arc<rustls::ClientConfig>,
    /// Give up resuming a dropped connection after this long.
    pub resume_timeout: Duration,
    /// Send a websocket ping this often.
    pub ping_interval: Duration,
    /// Declare the peer dead when nothing arrived for this long.
    pub silence_timeout: Duration,
    /// Dial `ws://` stream URLs too (the token then crosses the network in clear): for local
    /// test labs only, set from `EC2_BROKER_ALLOW_PLAINTEXT_WS` by the route.
    pub allow_plaintext: bool,
}

/// What the session is: its kind and the ids its KMS key is bound to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Purpose {
    /// What StartSession started.
    pub kind: SessionKind,
    /// Session and target ids.
    pub ids: SessionIds,
}

/// Why the data channel could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DriverError {
    /// The websocket could not be opened.
    #[error("cannot open the Session Manager data channel at {host}: {detail}")]
    Dial {
        /// Host and port of the StreamUrl (the query string carries nothing secret, but is long).
        host: String,
        /// What failed.
        detail: String,
    },
    /// The stream URL is not `wss://`.
    #[error(
        "refusing the Session Manager stream URL {url}: it is not wss://, and the session token would cross the network unencrypted (EC2_BROKER_ALLOW_PLAINTEXT_WS=1 allows ws:// for local test labs only)"
    )]
    Plaintext {
        /// Scheme and host of the URL (the rest is redacted).
        url: String,
    },
    /// The session ended during the handshake.
    #[error("the SSM agent ended the session during the handshake: {0}")]
    Handshake(String),
    /// The agent asked for KMS encryption and no data key could be had; the agent was told.
    #[error("the session must be KMS-encrypted, and no data key could be had")]
    Kms(#[source] BoxError),
    /// The agent sent something that cannot be trusted (a payload that does not decrypt ...).
    #[error("the session was ended: {0}")]
    Protocol(String),
    /// The channel broke and could not be resumed in time.
    #[error("the Session Manager connection dropped and could not be resumed within {secs}s: {last}")]
    ResumeTimedOut {
        /// The configured deadline.
        secs: u64,
        /// The last failure.
        last: String,
    },
    /// The connection dropped and the service says the session is gone.
    #[error("the Session Manager connection dropped and the session no longer exists")]
    SessionGone,
    /// Reading stdin or writing stdout failed.
    #[error("local i/o: {0}")]
    Local(#[from] std::io::Error),
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The service closed the channel (sshd closed the connection, the shell or command exited,
    /// or the session was terminated), with its text (printable).
    ChannelClosed(String),
    /// ssh closed stdin (it exited) or stdout.
    LocalClosed,
    /// SIGHUP, SIGTERM or SIGINT.
    Signal,
}

/// The result of [`Channel::run`](super::driver::Channel::run) and `run_local`.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// How it ended.
    pub end: End,
    /// The remote command's exit code, where the agent reported one.
    pub exit_code: Option<i32>,
    /// Protocol counters.
    pub stats: Stats,
    /// Successful reconnects.
    pub reconnects: u32,
}

/// What the local input is for the remote side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// A port session's stream: on EOF, drain briefly and end (ssh has exited).
    Stream,
    /// A pty's keyboard: on EOF send ^D once and wait for the remote side to end.
    Keyboard,
    /// The remote side reads no input (`NonInteractiveCommands`): input is not sent; the first
    /// bytes that come are reported once on the notes stream, then input is no longer read.
    Refused,
}

/// `wss://` always; `ws://` only when `allow_plaintext` (then with a warning); nothing else.
pub(crate) fn check_scheme(url: &str, allow_plaintext: bool) -> Result<(), DriverError> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if scheme.eq_ignore_ascii_case("wss") {
        return Ok(());
    }
    if scheme.eq_ignore_ascii_case("ws") && allow_plaintext {
        tracing::warn!(
            host = %url_host(url),
            "plaintext ws:// to the Session Manager data channel, allowed by EC2_BROKER_ALLOW_PLAINTEXT_WS (for local test labs only)"
        );
        return Ok(());
    }
    Err(DriverError::Plaintext { url: printable(&crate::redact::preview(url)).into_owned() })
}

/// The error for a session that ended otherwise than by `channel_closed`.
pub(crate) fn close_error(reason: &CloseReason) -> DriverError {
    match reason {
        CloseReason::Protocol(why) => DriverError::Protocol(printable(why).into_owned()),
        other => DriverError::Handshake(describe(other)),
    }
}

/// What a close says, fit for a message (the service's texts made printable).
fn describe(reason: &CloseReason) -> String {
    match reason {
        CloseReason::ChannelClosed { output } if output.is_empty() => "the service closed the channel".into(),
        CloseReason::ChannelClosed { output } => format!("the service closed the channel: {}", printable(output)),
        CloseReason::HandshakeRefused(why) | CloseReason::Protocol(why) => printable(why).into_owned(),
        CloseReason::HandshakeTimeout => {
            "the agent did not complete the handshake in time (is the SSM agent healthy? see its log)".into()
        }
        CloseReason::ConnectToPortError => "the agent could not connect to the port on the instance".into(),
        CloseReason::KmsFailed { key_id, detail } => {
            format!("no KMS data key for {}: {}", printable(key_id), printable(detail))
        }
    }
}

/// Host and port of a URL, for messages (the query string is long and opaque), made printable
/// (the service chose the URL).
pub(crate) fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    printable(rest.split(['/', '?']).next().unwrap_or(rest)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_host_hides_path_and_query() {
        assert_eq!(
            url_host("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe"),
            "ssmmessages.eu-west-1.amazonaws.com"
        );
        assert_eq!(url_host("ws://127.0.0.1:4000/v1/x"), "127.0.0.1:4000");
    }

    #[test]
    fn only_wss_unless_plaintext_is_allowed() {
        assert!(check_scheme("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1", false).is_ok());
        assert!(check_scheme("WSS://ssmmessages.eu-west-1.amazonaws.com/v1/x", false).is_ok());
        assert!(check_scheme("ws://127.0.0.1:4000/v1/x", true).is_ok());
        for url in ["ws://127.0.0.1:4000/v1/x", "http://127.0.0.1/x", "https://h/x", "127.0.0.1:4000"] {
            assert!(matches!(check_scheme(url, false), Err(DriverError::Plaintext { .. })), "{url}");
        }
        // Allowing plaintext allows ws://, not any scheme.
        assert!(check_scheme("http://127.0.0.1/x", true).is_err());
        let e = check_scheme("ws://127.0.0.1:4000/v1/data-channel/s-1?role=publish_subscribe", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing the Session Manager stream URL ws://127.0.0.1:4000/…<redacted>: it is not wss://, and the session token would cross the network unencrypted (EC2_BROKER_ALLOW_PLAINTEXT_WS=1 allows ws:// for local test labs only)"
        );
    }

    // See: issue 14 (§5, wss://).

    #[test]
    fn service_texts_are_printable() {
        let closed = CloseReason::ChannelClosed { output: "bye\x1b]0;owned\x07".into() };
        assert_eq!(describe(&closed), "the service closed the channel: bye\\x1b]0;owned\\x07");
        let refused = CloseReason::HandshakeRefused("unsupported action \u{9b}2J".into());
        assert_eq!(describe(&refused), "unsupported action \\u{9b}2J");
    }
}
