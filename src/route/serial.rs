//! The serial route for `proxy --route serial`: the user's own ssh talks to the serial console
//! endpoint as `INSTANCE.port0`; the broker dials the endpoint and checks the endpoint's host key
//! inside the relayed stream ([`crate::serial::host_key_check`], which follows the key exchange
//! from both directions: [`HostKeyGuard`] shows it what ssh writes, unchanged, as well as what the
//! endpoint sends, so it checks the very packet ssh takes as the reply). Only once the key is the
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

use crate::serial::endpoints::{Endpoint, Fingerprint};
use crate::serial::host_key_check::{HostKeyCheck, Verdict};

/// The user name the serial endpoint expects for `instance_id`.
pub(crate) fn user_for(instance_id: &str) -> String {
    format!("{instance_id}.port0")
}

/// Checks that ssh logs in as `INSTANCE.port0` for the instance the host resolved to.
pub(crate) fn check_user(ssh_user: &str, instance_id: &str) -> Result<(), SerialRouteError> {
    match ssh_user == user_for(instance_id) {
        true => Ok(()),
        false => Err(SerialRouteError::User { user: ssh_user.to_string(), expected: user_for(instance_id) }),
    }
}

/// Why the serial route could not open.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SerialRouteError {
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
    /// No endpoint could be chosen (unknown Region, bad override).
    #[error(transparent)]
    Endpoint(#[from] crate::serial::endpoints::EndpointError),
    /// The account or the instance type rules the console out.
    #[error(transparent)]
    Preflight(#[from] crate::serial::preflight::PreflightError),
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

/// The serial route's settings: overrides of the Region's published endpoint and fingerprint.
#[derive(Debug, Clone, Default)]
pub(crate) struct SerialOptions {
    /// `HOST[:PORT]` instead of the Region's endpoint.
    pub endpoint: Option<String>,
    /// `SHA256:…` instead of the published fingerprint.
    pub fingerprint: Option<String>,
    /// The user ssh logs in as (`%r`), which must be `INSTANCE.port0`.
    pub user: Option<String>,
}

/// The whole serial route for `instance`: the user, the endpoint, the account's and the type's
/// prerequisites, then [`open`].
pub(crate) async fn open_for(
    aws: &crate::aws::Aws,
    instance: &crate::target::instance::Instance,
    opts: &SerialOptions,
    timeout: Duration,
    gate: Option<Gate>,
) -> Result<HostKeyGuard<TcpStream>, SerialRouteError> {
    if let Some(user) = &opts.user {
        check_user(user, &instance.id)?;
    }
    let endpoint =
        crate::serial::endpoints::resolve(&aws.region, opts.endpoint.as_deref(), opts.fingerprint.as_deref())?;
    crate::serial::preflight::check(aws, instance, &instance.label()).await?;
    tracing::info!(%endpoint, "opening the serial route");
    open(&endpoint, timeout, gate).await
}

/// Work to finish after the host key is verified and before ssh sees it (the key push).
pub(crate) type Gate = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// Dials the endpoint; the returned stream refuses to pass on a host key without the pinned
/// fingerprint, and runs `gate` once the key is verified, before ssh gets the key.
pub(crate) async fn open(
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
    Ok(HostKeyGuard::new(tcp, endpoint.fingerprint.clone(), name, gate))
}

/// A stream whose read side goes through a [`HostKeyCheck`], which also observes what is written:
/// the check follows the key exchange from both sides (the endpoint's reply only counts after
/// ssh's own key-exchange message went out). Written bytes pass unchanged.
pub(crate) struct HostKeyGuard<S> {
    inner: S,
    check: HostKeyCheck,
    /// Checked bytes not yet handed to the reader.
    ready: Vec<u8>,
    endpoint: String,
    gate: Option<Gate>,
}

impl<S> HostKeyGuard<S> {
    /// Guards `inner`, a connection to `endpoint` whose host key must have `fingerprint`; `gate`
    /// runs once the key is verified, before the reader gets the key.
    pub(crate) fn new(inner: S, fingerprint: Fingerprint, endpoint: String, gate: Option<Gate>) -> Self {
        HostKeyGuard { inner, check: HostKeyCheck::new(fingerprint), ready: Vec::new(), endpoint, gate }
    }

    /// The error that ends the connection once the check has failed.
    fn refusal(&self) -> Option<io::Error> {
        match self.check.verdict() {
            Verdict::Pending | Verdict::Verified => None,
            Verdict::Mismatch { found } => Some(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "the serial console endpoint {} presented host key {found}, not the published one: cut the connection before ssh could authenticate (pass --serial-fingerprint if AWS rotated the key)",
                    self.endpoint
                ),
            )),
            Verdict::Malformed(why) => Some(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{why} ({}): cut the connection", self.endpoint),
            )),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HostKeyGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if let Some(err) = this.refusal() {
                return Poll::Ready(Err(err));
            }
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
            let (forward, _) = this.check.handle_server(data);
            this.ready = forward;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HostKeyGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(err) = this.refusal() {
            return Poll::Ready(Err(err));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        // The check sees exactly what went out, after it went out and before any answer to it is read.
        if this.check.handle_client(&data[..n]) != Verdict::Pending
            && let Some(err) = this.refusal()
        {
            // Those n bytes (ssh's side of the key exchange, harmless) went out; the connection ends here.
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(n))
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
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey, PublicKeyOrCertificate};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    #[test]
    fn user_must_name_the_instance() {
        check_user("i-0a1b2c3d4e5f60718.port0", "i-0a1b2c3d4e5f60718").unwrap();
        let err = check_user("ec2-user", "i-0a1b2c3d4e5f60718").unwrap_err().to_string();
        assert!(err.contains("takes the user i-0a1b2c3d4e5f60718.port0, not ec2-user"), "{err}");
        assert!(check_user("i-0a1b2c3d4e5f60718.port1", "i-0a1b2c3d4e5f60718").is_err());
    }

    /// A russh server that lets anyone in with a password.
    struct OpenServer;

    impl russh::server::Handler for OpenServer {
        type Error = russh::Error;

        async fn auth_password(&mut self, _: &str, _: &str) -> Result<russh::server::Auth, Self::Error> {
            Ok(russh::server::Auth::Accept)
        }
    }

    /// A russh client that trusts any host key, like ssh with `StrictHostKeyChecking accept-new`
    /// and an empty known_hosts: only the guard stands between it and a wrong endpoint.
    struct TrustingClient;

    impl russh::client::Handler for TrustingClient {
        type Error = russh::Error;

        async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }

    fn host_key() -> PrivateKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).expect("a random key")
    }

    fn fingerprint(key: &PublicKey) -> Fingerprint {
        Fingerprint::parse(&key.fingerprint(HashAlg::Sha256).to_string()).expect("ssh-key prints fingerprints")
    }

    /// An SSH_MSG_KEX_ECDH_REPLY (31) carrying `key`, with a made-up value and signature.
    fn decoy_reply(key: &PublicKey) -> Vec<u8> {
        let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
        let payload =
            [&[31u8][..], &string(&key.to_bytes().expect("encodes")), &string(&[9; 32]), &string(b"sig")].concat();
        let padding = 4 + (8 - (payload.len() + 9) % 8) % 8;
        let len = ((payload.len() + padding + 1) as u32).to_be_bytes();
        [&len[..], &[padding as u8], &payload, &vec![0; padding]].concat()
    }

    /// Between the guard and the server: after the server's version line, sends `decoy` first.
    async fn decoy_relay(guard_side: DuplexStream, server_side: DuplexStream, decoy: Vec<u8>) -> io::Result<()> {
        let (mut from_guard, mut to_guard) = tokio::io::split(guard_side);
        let (mut from_server, mut to_server) = tokio::io::split(server_side);
        let up = tokio::spawn(async move { tokio::io::copy(&mut from_guard, &mut to_server).await });
        let mut line = Vec::new();
        while !line.ends_with(b"\n") {
            let mut byte = [0u8];
            from_server.read_exact(&mut byte).await?;
            line.push(byte[0]);
        }
        to_guard.write_all(&line).await?;
        to_guard.write_all(&decoy).await?;
        tokio::io::copy(&mut from_server, &mut to_guard).await?;
        up.abort();
        Ok(())
    }

    /// Connects a russh client through a guard expecting `expected` to a russh server with
    /// `server_key`, optionally through a relay that injects `decoy`; returns whether the client
    /// logged in (or its error) and whether the guard ran its gate (the key push).
    async fn through_guard(
        server_key: PrivateKey,
        expected: &PublicKey,
        decoy: Option<Vec<u8>>,
        kex: &'static [russh::kex::Name],
    ) -> (Result<bool, russh::Error>, bool) {
        // russh writes a whole KEXINIT before it reads, on both sides: the pipes need room for one
        // (about 1 KiB), as TCP buffers have; the unit tests feed the check byte by byte.
        const BUF: usize = 4096;
        let (client_side, guard_inner) = tokio::io::duplex(BUF);
        let server_end = match decoy {
            None => client_side,
            Some(decoy) => {
                let (relay_server_side, server_end) = tokio::io::duplex(BUF);
                tokio::spawn(decoy_relay(client_side, relay_server_side, decoy));
                server_end
            }
        };
        let config = Arc::new(russh::server::Config { keys: vec![server_key], ..Default::default() });
        tokio::spawn(async move {
            if let Ok(session) = russh::server::run_stream(config, server_end, OpenServer).await {
                let _ = session.await;
            }
        });
        let pushed = Arc::new(AtomicBool::new(false));
        let flag = pushed.clone();
        let gate: Gate = Box::pin(async move {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        let guard = HostKeyGuard::new(guard_inner, fingerprint(expected), "test-endpoint".to_string(), Some(gate));
        let login = async {
            let preferred = russh::Preferred { kex: Cow::Borrowed(kex), ..russh::Preferred::DEFAULT };
            let config = Arc::new(russh::client::Config { preferred, ..Default::default() });
            let mut handle = russh::client::connect_stream(config, guard, TrustingClient).await?;
            Ok(handle.authenticate_password("i-0a1b2c3d4e5f60718.port0", "pw").await?.success())
        };
        let result = tokio::time::timeout(Duration::from_secs(20), login).await.expect("the login ends within 20 s");
        (result, pushed.load(Ordering::SeqCst))
    }

    // See: issue 14
    #[tokio::test]
    async fn russh_client_and_server_through_the_guard() {
        // russh's default order (ML-KEM hybrid, 30/31) and DH group exchange (34, 31, 32, 33),
        // both with strict KEX.
        const DEFAULT: &[russh::kex::Name] = &[
            russh::kex::MLKEM768X25519_SHA256,
            russh::kex::CURVE25519,
            russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
            russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ];
        const GEX: &[russh::kex::Name] =
            &[russh::kex::DH_GEX_SHA256, russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT];
        for kex in [DEFAULT, GEX] {
            // The published key: the exchange passes the guard in both directions unchanged,
            // the key push runs, and the login works.
            let aws = host_key();
            let (login, pushed) = through_guard(aws.clone(), aws.public_key(), None, kex).await;
            assert!(login.expect("the login works") && pushed, "{kex:?}: the key push runs before the login");

            // Another key: cut before ssh could authenticate, nothing pushed.
            let (login, pushed) = through_guard(host_key(), aws.public_key(), None, kex).await;
            assert!(!pushed && refused_with(&login, io::ErrorKind::PermissionDenied), "{kex:?}: {login:?}");

            // An interceptor that shows AWS's key in a decoy before the key exchange, then runs
            // the exchange with its own key: cut, nothing pushed.
            let decoy = Some(decoy_reply(aws.public_key()));
            let (login, pushed) = through_guard(host_key(), aws.public_key(), decoy, kex).await;
            assert!(!pushed && refused_with(&login, io::ErrorKind::InvalidData), "{kex:?}: {login:?}");
        }
    }

    /// Whether the client failed with the guard's error of `kind`.
    fn refused_with(login: &Result<bool, russh::Error>, kind: io::ErrorKind) -> bool {
        matches!(login, Err(russh::Error::IO(e)) if e.kind() == kind && e.to_string().contains("test-endpoint"))
    }
}
