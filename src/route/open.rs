//! The one way to open a route: [`open`] one route, or [`open_first`] of a plan. Every caller
//! (`proxy`, `known-hosts pin`, `doctor`) comes through here, so an explicit `--route X` is a plan
//! of one and behaves exactly as `auto` does: a route counts as open only once the instance's SSH
//! server has spoken (its identification line), so a tunnel that is accepted and then closed, or
//! a port that accepts and says nothing, falls through to the next route before ssh sees a
//! single byte. Nothing is read from ssh's stdin until a route is chosen. The serial route is
//! the exception by nature: the user's ssh talks to the console endpoint, whose host key the
//! guard checks instead ([`super::serial`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::error::{Greeting, RouteError};
use super::{Route, direct, eice, serial, ssm};
use crate::aws::Aws;
use crate::target::instance::{AddressKind, Instance};

/// How long the SSH server may take to send its identification once a route is open.
pub(crate) const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// The direct route's connect deadline when other routes wait behind it.
pub(crate) const DIRECT_DEADLINE: Duration = Duration::from_secs(3);
/// Opening an endpoint tunnel or a Session Manager session, at most.
pub(crate) const RELAYED_DEADLINE: Duration = Duration::from_secs(20);
/// The longest first line an SSH server may send: OpenSSH's `SSH_MAX_BANNER_LEN` (kex.c). A
/// time bound alone would let an endpoint that never sends a line end fill memory.
const MAX_HELLO: usize = 8192;
/// Buffer between a relayed route and ssh's stdio: 256 KiB holds several of the largest SSM and
/// EICE messages, so the relay task never waits on the pipe for one message.
const RELAY_BUFFER: usize = 256 * 1024;

/// The instance, and where on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The instance.
    pub instance: &'a Instance,
    /// The SSH port.
    pub port: u16,
    /// The address the direct route dials.
    pub address: AddressKind,
}

/// Settings of the routes, from the command line and the settings file.
#[derive(Debug, Clone)]
pub(crate) struct RouteOptions {
    /// The eice route's.
    pub eice: eice::EiceOptions,
    /// The ssm route's.
    pub ssm: ssm::SsmOptions,
    /// The serial route's endpoint and fingerprint overrides.
    pub serial: serial::SerialOptions,
    /// How long the direct route may take to connect when it is the last route to try.
    pub connect_timeout: Duration,
}

/// Everything a route needs besides the target.
pub(crate) struct Ctx<'a> {
    /// AWS clients.
    pub aws: &'a Aws,
    /// The routes' settings.
    pub options: &'a RouteOptions,
    /// Work to run once the serial endpoint proved to be AWS's (the key push, which opens the
    /// serial session); the serial route only.
    pub serial_gate: std::sync::Mutex<Option<serial::Gate>>,
}

impl<'a> Ctx<'a> {
    /// A context without a serial gate.
    pub(crate) fn new(aws: &'a Aws, options: &'a RouteOptions) -> Self {
        Ctx { aws, options, serial_gate: std::sync::Mutex::new(None) }
    }
}

/// A route that is open (for sshd routes: whose SSH server has spoken).
pub(crate) struct Opened {
    /// Which route.
    pub route: Route,
    /// The byte stream to the instance's SSH port (or the serial endpoint).
    pub stream: Stream,
}

/// The byte stream of an open route.
pub(crate) enum Stream {
    /// The direct TCP connection (the server's first bytes are still unread in the socket, so
    /// `splice(2)` can move them).
    Direct(TcpStream),
    /// An endpoint tunnel or a Session Manager session, running in a task, reached through an
    /// in-memory pipe whose reads start again with the identification already read.
    Relayed {
        /// Our end of the pipe.
        local: Replayed<DuplexStream>,
        /// The route's own relay task (it ends a Session Manager session when the pipe closes).
        task: JoinHandle<Result<(), RouteError>>,
    },
    /// The serial console endpoint, behind the host-key guard (boxed: it holds the check's
    /// state, and the other variants are small).
    Serial(Box<serial::HostKeyGuard<TcpStream>>),
}

/// What trying one route of a plan gave.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// The route.
    pub route: Route,
    /// Why it was not taken.
    pub error: RouteError,
}

/// Tries `plan` in order; returns the first route that is really open, or every route's failure.
pub(crate) async fn open_first(plan: &[Route], target: &Target<'_>, ctx: &Ctx<'_>) -> Result<Opened, Vec<Attempt>> {
    let mut attempts = Vec::new();
    for (i, &route) in plan.iter().enumerate() {
        tracing::info!(%route, "trying route");
        let last = i + 1 == plan.len();
        match open_with(route, target, ctx, last).await {
            Ok(opened) => return Ok(opened),
            Err(error) => {
                tracing::info!(%route, error = %error.chain(), "route did not open; trying the next");
                attempts.push(Attempt { route, error });
            }
        }
    }
    Err(attempts)
}

/// Opens one route: `Ok` once its SSH server has sent its identification.
pub(crate) async fn open(route: Route, target: &Target<'_>, ctx: &Ctx<'_>) -> Result<Opened, RouteError> {
    open_with(route, target, ctx, true).await
}

/// The one dispatch on [`Route`]. `last`: no other route waits behind this one (the direct route
/// may then take the whole connect timeout).
async fn open_with(route: Route, t: &Target<'_>, ctx: &Ctx<'_>, last: bool) -> Result<Opened, RouteError> {
    let opts = ctx.options;
    let stream = match route {
        Route::Direct => {
            let ip = t.instance.address(t.address)?;
            let timeout = if last { opts.connect_timeout } else { DIRECT_DEADLINE.min(opts.connect_timeout) };
            let stream = direct::connect(SocketAddr::new(IpAddr::V4(ip), t.port), timeout).await?;
            peek_hello(&stream).await?;
            Stream::Direct(stream)
        }
        Route::Eice => {
            let tunnel = tokio::time::timeout(RELAYED_DEADLINE, eice::open(ctx.aws, t.instance, t.port, &opts.eice))
                .await
                .map_err(|_| RouteError::Timeout { what: "tunnel", secs: RELAYED_DEADLINE.as_secs() })??;
            relayed(|rd, wr| async move {
                let stats = tunnel.pipe_with(rd, wr).await?;
                tracing::info!(up = stats.up, down = stats.down, "tunnel closed");
                Ok(())
            })
            .await?
        }
        Route::Ssm => {
            let session = tokio::time::timeout(RELAYED_DEADLINE, ssm::open(ctx.aws, t.instance, t.port, opts.ssm))
                .await
                .map_err(|_| RouteError::Timeout { what: "session", secs: RELAYED_DEADLINE.as_secs() })??;
            tracing::info!(session = session.session_id(), "Session Manager session open");
            relayed(|rd, wr| async move {
                let outcome = session.pipe_with(rd, wr).await?;
                let s = outcome.stats;
                tracing::info!(
                    end = ?outcome.end, up = s.bytes_out, down = s.bytes_in, retransmits = s.retransmits,
                    duplicates = s.duplicates, reconnects = outcome.reconnects, "session ended"
                );
                Ok(())
            })
            .await?
        }
        Route::Serial => {
            let gate = ctx.serial_gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            Stream::Serial(Box::new(
                serial::open_for(ctx.aws, t.instance, &opts.serial, opts.connect_timeout, gate).await?,
            ))
        }
    };
    Ok(Opened { route, stream })
}

/// Waits until the server's first line is in the socket (without consuming it).
async fn peek_hello(stream: &TcpStream) -> Result<(), RouteError> {
    let wait = async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream.peek(&mut buf).await.map_err(|e| RouteError::Greeting(Greeting::Failed(e.to_string())))?;
            if n == 0 {
                return Err(RouteError::Greeting(Greeting::Closed));
            }
            if buf[..n].contains(&b'\n') || n == buf.len() {
                return Ok(());
            }
            // Only part of the line yet: wait for more.
            stream.readable().await.map_err(|e| RouteError::Greeting(Greeting::Failed(e.to_string())))?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(HELLO_DEADLINE, wait)
        .await
        .map_err(|_| RouteError::Greeting(Greeting::Silent { secs: HELLO_DEADLINE.as_secs() }))?
}

/// Runs a relayed route in a task behind an in-memory pipe and waits for the server's first line.
async fn relayed<F, Fut>(run: F) -> Result<Stream, RouteError>
where
    F: FnOnce(tokio::io::ReadHalf<DuplexStream>, tokio::io::WriteHalf<DuplexStream>) -> Fut,
    Fut: Future<Output = Result<(), RouteError>> + Send + 'static,
{
    let (mut local, remote) = tokio::io::duplex(RELAY_BUFFER);
    let (rd, wr) = tokio::io::split(remote);
    let task = tokio::spawn(run(rd, wr));
    let mut hello = Vec::new();
    let read = async {
        let mut buf = [0u8; 512];
        while !hello.contains(&b'\n') {
            let n = local.read(&mut buf).await.map_err(|e| Greeting::Failed(e.to_string()))?;
            if n == 0 {
                return Err(Greeting::Closed);
            }
            hello.extend_from_slice(&buf[..n]);
            if !hello.contains(&b'\n') && hello.len() > MAX_HELLO {
                return Err(Greeting::NotSsh { max: MAX_HELLO });
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HELLO_DEADLINE, read).await {
        Ok(Ok(())) => Ok(Stream::Relayed { local: Replayed { first: hello, inner: local }, task }),
        Ok(Err(greeting)) => {
            drop(local);
            // The route usually knows why it closed (the endpoint's close reason, the agent's).
            let cause = match tokio::time::timeout(Duration::from_millis(500), task).await {
                Ok(Ok(Err(e))) => Some(Box::new(e)),
                _ => None,
            };
            Err(RouteError::Relayed { greeting, cause })
        }
        Err(_) => {
            task.abort();
            Err(RouteError::Greeting(Greeting::Silent { secs: HELLO_DEADLINE.as_secs() }))
        }
    }
}

/// A stream whose reads give `first` before anything else (the bytes read while deciding).
pub(crate) struct Replayed<S> {
    first: Vec<u8>,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.first.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.first.len().min(buf.remaining());
        buf.put_slice(&self.first[..n]);
        self.first.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
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
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn replayed_bytes_come_first_and_writes_pass() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Replayed { first: b"SSH-2.0-x\r\n".to_vec(), inner: a };
        b.write_all(b"rest").await.unwrap();
        drop(b);
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"SSH-2.0-x\r\nrest");
    }

    // See: issue 14 (pre-handshake reads get a byte bound, not only a time bound).
    #[tokio::test]
    async fn a_first_line_without_end_is_refused_before_the_deadline() {
        let endless = |_rd, mut wr: tokio::io::WriteHalf<DuplexStream>| async move {
            let chunk = [b'x'; 4096];
            loop {
                wr.write_all(&chunk).await.map_err(|e| RouteError::Greeting(Greeting::Failed(e.to_string())))?;
            }
        };
        let started = tokio::time::Instant::now();
        let refused = relayed(endless).await.err().expect("an endless first line is not an SSH server");
        assert!(
            matches!(refused, RouteError::Relayed { greeting: Greeting::NotSsh { max: MAX_HELLO }, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("without a line end"), "{refused}");
        assert!(started.elapsed() < HELLO_DEADLINE, "refused by size, not by the clock");

        let ssh = |_rd, mut wr: tokio::io::WriteHalf<DuplexStream>| async move {
            wr.write_all(b"SSH-2.0-OpenSSH_9.2\r\n")
                .await
                .map_err(|e| RouteError::Greeting(Greeting::Failed(e.to_string())))?;
            std::future::pending::<()>().await;
            Ok(())
        };
        assert!(matches!(relayed(ssh).await, Ok(Stream::Relayed { .. })));
    }
}
