//! The serial route for `proxy --route serial`: the user's own ssh talks to the serial console
//! endpoint as `INSTANCE.port0`; the broker dials the endpoint and checks the endpoint's host key
//! inside the relayed stream ([`crate::serial::host_key_check`]). Only once the key is the
//! published one does it push the user's key (which opens the serial session) and let the
//! endpoint's key-exchange reply through, so ssh cannot authenticate, and no session is opened,
//! towards an endpoint that is not AWS's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::serial::endpoints::Endpoint;
use crate::serial::host_key_check::{HostKeyCheck, Verdict};

/// The user name the serial endpoint expects for `instance_id`.
pub fn user_for(instance_id: &str) -> String {
    format!("{instance_id}.port0")
}

/// Checks that ssh logs in as `INSTANCE.port0` for the instance the host resolved to.
pub fn check_user(ssh_user: &str, instance_id: &str) -> Result<(), SerialRouteError> {
    match ssh_user == user_for(instance_id) {
        true => Ok(()),
        false => Err(SerialRouteError::User { user: ssh_user.to_string(), expected: user_for(instance_id) }),
    }
}

/// Why the serial route could not open.
#[derive(Debug, thiserror::Error)]
pub enum SerialRouteError {
    /// ssh logs in as someone the endpoint will not accept.
    #[error(
        "the serial console takes the user {expected}, not {user}: run `ssh -tt {expected}@HOST` or set `User {expected}` in ssh_config (or use `ec2-broker console HOST`)"
    )]
    User {
        /// What ssh passed as %r.
        user: String,
        /// `INSTANCE.port0`.
        expected: String,
    },
    /// TCP failed.
    #[error("cannot reach the serial console endpoint {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// OS error.
        source: io::Error,
    },
    /// No answer in time.
    #[error("the serial console endpoint {endpoint} did not answer within {}s", timeout.as_secs())]
    Timeout {
        /// Where.
        endpoint: String,
        /// How long we waited.
        timeout: Duration,
    },
}

/// Work to finish after the host key is verified and before ssh sees it (the key push).
pub type Gate = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Dials the endpoint; the returned stream refuses to pass on a host key without the pinned
/// fingerprint, and runs `gate` once the key is verified, before ssh gets the key.
pub async fn open(
    endpoint: &Endpoint,
    timeout: Duration,
    gate: Option<Gate>,
) -> Result<HostKeyGuard<TcpStream>, SerialRouteError> {
    let name = endpoint.to_string();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect((endpoint.host.as_str(), endpoint.port))).await {
        Err(_) => return Err(SerialRouteError::Timeout { endpoint: name, timeout }),
        Ok(Err(source)) => return Err(SerialRouteError::Connect { endpoint: name, source }),
        Ok(Ok(s)) => s,
    };
    let _ = tcp.set_nodelay(true);
    tracing::info!(endpoint = %name, "connected to the serial console endpoint");
    let check = HostKeyCheck::new(endpoint.fingerprint.clone());
    Ok(HostKeyGuard { inner: tcp, check, ready: Vec::new(), endpoint: name, gate })
}

/// A stream whose read side goes through a [`HostKeyCheck`]; writes pass unchanged.
pub struct HostKeyGuard<S> {
    inner: S,
    check: HostKeyCheck,
    /// Checked bytes not yet handed to the reader.
    ready: Vec<u8>,
    endpoint: String,
    gate: Option<Gate>,
}

impl<S: AsyncRead + Unpin> AsyncRead for HostKeyGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let (Some(gate), Verdict::Verified) = (this.gate.as_mut(), this.check.verdict()) {
                ready!(gate.as_mut().poll(cx))?;
                this.gate = None;
            }
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut raw = [0u8; 16 * 1024];
            let mut raw_buf = ReadBuf::new(&mut raw);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw_buf))?;
            let data = raw_buf.filled();
            if data.is_empty() {
                return match this.check.verdict() {
                    Verdict::Pending => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the serial console endpoint {} closed before showing its host key", this.endpoint),
                    ))),
                    _ => Poll::Ready(Ok(())),
                };
            }
            let (forward, verdict) = this.check.feed(data);
            match verdict {
                Verdict::Mismatch { found } => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "the serial console endpoint {} presented host key {found}, not the published one: cut the connection before ssh could authenticate (pass --serial-fingerprint if AWS rotated the key)",
                            this.endpoint
                        ),
                    )));
                }
                Verdict::Malformed(why) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{why} ({}): cut the connection", this.endpoint),
                    )));
                }
                Verdict::Verified | Verdict::Pending => this.ready = forward,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HostKeyGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_must_name_the_instance() {
        check_user("i-0a1b2c3d4e5f60718.port0", "i-0a1b2c3d4e5f60718").unwrap();
        let err = check_user("ec2-user", "i-0a1b2c3d4e5f60718").unwrap_err().to_string();
        assert!(err.contains("takes the user i-0a1b2c3d4e5f60718.port0, not ec2-user"), "{err}");
        assert!(check_user("i-0a1b2c3d4e5f60718.port1", "i-0a1b2c3d4e5f60718").is_err());
    }
}
