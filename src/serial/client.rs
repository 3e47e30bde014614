//! The console's own SSH connection to the serial endpoint (russh): the host key must have the
//! published fingerprint (checked before authentication), then the pushed key logs in as
//! `INSTANCE.port0` and a pty session carries the serial line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, Pty};

use super::endpoints::{Endpoint, Fingerprint};
use crate::keys::{EphemeralKey, KEY_VALIDITY_SECS, KeyError};

/// How long a pushed console key is accepted (Instance Connect's 60 s).
pub(crate) const KEY_VALIDITY: Duration = Duration::from_secs(KEY_VALIDITY_SECS as u64);

/// The console's short-lived key: made fresh for one session and pushed with
/// `SendSerialConsoleSSHPublicKey` (commands hold it without handling key material).
pub(crate) struct ConsoleKey(EphemeralKey);

impl ConsoleKey {
    /// A fresh Ed25519 key.
    pub(crate) fn generate() -> Result<Self, KeyError> {
        EphemeralKey::generate().map(ConsoleKey)
    }

    /// The public half, as `SendSerialConsoleSSHPublicKey` takes it.
    pub(crate) fn public_openssh(&self) -> String {
        self.0.public_openssh()
    }
}

/// Why the console could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// No TCP connection.
    #[error("cannot reach the serial console endpoint {endpoint}: {source}")]
    Tcp {
        /// Where.
        endpoint: String,
        /// OS error.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("the serial console endpoint {endpoint} did not answer within {}s", timeout.as_secs())]
    Timeout {
        /// Where.
        endpoint: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The endpoint's host key is not the published one: never authenticate to it.
    #[error(
        "the serial console endpoint {endpoint} presented host key {found}, but AWS publishes {expected} for it: refusing to connect (someone may be intercepting the connection, or AWS rotated the key: compare with AWS's \"EC2 Serial Console endpoints and fingerprints\" page and pass --serial-fingerprint if it changed)"
    )]
    HostKey {
        /// Where.
        endpoint: String,
        /// The published fingerprint.
        expected: String,
        /// What the endpoint presented.
        found: String,
    },
    /// The endpoint refused the pushed key.
    #[error(
        "the serial console refused the key for {user}: a pushed key is valid for 60 s and only for the session it opened; check that this machine's clock is right and try again"
    )]
    Refused {
        /// The user name (`INSTANCE.port0`).
        user: String,
    },
    /// SSH failed otherwise (the endpoint closed the connection, a protocol error ...).
    #[error("the serial console connection failed: {0}")]
    Ssh(#[from] russh::Error),
}

/// Window size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// An open console: the connection and its one session channel.
pub(crate) struct Console {
    handle: Handle<PinnedHostKey>,
    /// The session channel with a pty and a shell (the serial line).
    pub channel: Channel<Msg>,
}

/// A connection whose host key has been checked, not yet logged in.
pub(crate) struct Connected {
    handle: Handle<PinnedHostKey>,
    endpoint: String,
    timeout: Duration,
}

impl Connected {
    /// Connects to `endpoint` and completes the key exchange: the host key must have the pinned
    /// fingerprint, so nothing (not even the key push) happens for an endpoint that is not AWS's.
    pub(crate) async fn connect(endpoint: &Endpoint, timeout: Duration) -> Result<Connected, ConnectError> {
        let name = endpoint.to_string();
        let tcp =
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)))
                .await
                .map_err(|_| ConnectError::Timeout { endpoint: name.clone(), timeout })?
                .map_err(|source| ConnectError::Tcp { endpoint: name.clone(), source })?;
        let _ = tcp.set_nodelay(true);
        let found = Arc::new(Mutex::new(None));
        let checker = PinnedHostKey { expected: endpoint.fingerprint.clone(), found: found.clone() };
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 4,
            ..client::Config::default()
        });
        match tokio::time::timeout(timeout, client::connect_stream(config, tcp, checker)).await {
            Err(_) => Err(ConnectError::Timeout { endpoint: name, timeout }),
            Ok(Ok(handle)) => Ok(Connected { handle, endpoint: name, timeout }),
            Ok(Err(e)) => {
                let presented = found.lock().unwrap_or_else(|p| p.into_inner()).take();
                match presented {
                    Some(found) if found != endpoint.fingerprint.as_str() => {
                        Err(ConnectError::HostKey { endpoint: name, expected: endpoint.fingerprint.to_string(), found })
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Logs in as `user` with `key` and starts a pty session of terminal type `term` and size `size`.
    pub(crate) async fn login(
        self,
        user: &str,
        key: &ConsoleKey,
        term: &str,
        size: Size,
    ) -> Result<Console, ConnectError> {
        let key = &key.0;
        let Connected { mut handle, endpoint, timeout } = self;
        let login = async {
            let key = PrivateKeyWithHashAlg::new(Arc::new(key.private_key().clone()), None);
            if !handle.authenticate_publickey(user, key).await?.success() {
                return Err(ConnectError::Refused { user: user.to_string() });
            }
            tracing::info!(user, "logged in to the serial console endpoint");
            let channel = handle.channel_open_session().await?;
            channel.request_pty(true, term, size.cols, size.rows, 0, 0, &[] as &[(Pty, u32)]).await?;
            channel.request_shell(true).await?;
            Ok(channel)
        };
        match tokio::time::timeout(timeout, login).await {
            Err(_) => Err(ConnectError::Timeout { endpoint, timeout }),
            Ok(Ok(channel)) => Ok(Console { handle, channel }),
            Ok(Err(e)) => Err(e),
        }
    }
}

impl Console {
    /// Ends the connection politely.
    pub(crate) async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.handle.disconnect(russh::Disconnect::ByApplication, "ec2-broker console closed", "").await;
    }
}

/// Accepts only the published host key, and remembers what was presented for the error message.
struct PinnedHostKey {
    expected: Fingerprint,
    found: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = ConnectError;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        // A certificate is not what AWS publishes: compare the key it certifies like any other.
        let public = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key().clone().into(),
        };
        let found = public.fingerprint(HashAlg::Sha256).to_string();
        let ok = found == self.expected.as_str();
        tracing::debug!(%found, expected = %self.expected, ok, "serial console endpoint host key");
        *self.found.lock().unwrap_or_else(|p| p.into_inner()) = Some(found);
        Ok(ok)
    }
}
