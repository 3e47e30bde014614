//! `--route auto`: try the planned routes in turn ([`super::plan`]) and keep the first that is
//! really open: a route counts as open only once the instance's SSH server has spoken (its
//! identification line), so a tunnel that is accepted and then closed, or a port that accepts and
//! says nothing, falls through to the next route before ssh sees a single byte. Nothing is read
//! from ssh's stdin until a route is chosen.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::{Route, direct, eice, ssm};
use crate::aws::Aws;
use crate::target::instance::Instance;

/// How long the SSH server may take to send its identification once a route is open.
pub const HELLO_DEADLINE: Duration = Duration::from_secs(10);
/// The direct route's connect deadline when other routes wait behind it.
pub const DIRECT_DEADLINE: Duration = Duration::from_secs(3);
/// Opening an endpoint tunnel or a Session Manager session, at most.
pub const RELAYED_DEADLINE: Duration = Duration::from_secs(20);
/// The longest first line an SSH server may send: OpenSSH's `SSH_MAX_BANNER_LEN` (kex.c). A
/// time bound alone would let an endpoint that never sends a line end fill memory.
const MAX_HELLO: usize = 8192;
/// Buffer between a relayed route and ssh's stdio.
const RELAY_BUFFER: usize = 256 * 1024;

/// A route that is open and whose SSH server has spoken.
pub enum Opened {
    /// The direct TCP connection (the server's first bytes are still unread in the socket).
    Direct(TcpStream),
    /// An endpoint tunnel or a Session Manager session, running in a task, reached through an
    /// in-memory pipe whose reads start again with the identification already read.
    Relayed {
        /// Our end of the pipe.
        local: Replayed<DuplexStream>,
        /// The route's own relay task.
        task: JoinHandle<anyhow::Result<()>>,
    },
}

/// What trying one route gave.
pub struct Attempt {
    /// The route.
    pub route: Route,
    /// Why it was not taken (`None`: taken).
    pub failure: Option<String>,
}

/// Everything the routes need.
pub struct Target<'a> {
    /// AWS clients.
    pub aws: &'a Aws,
    /// The instance.
    pub instance: &'a Instance,
    /// The address the direct route dials, if any.
    pub address: Option<Ipv4Addr>,
    /// The SSH port.
    pub port: u16,
    /// Options of the eice route.
    pub eice: eice::EiceOptions,
    /// Options of the ssm route.
    pub ssm: ssm::SsmOptions,
}

/// Tries `routes` in order; returns the first that is really open, and what happened to each
/// route tried.
pub async fn open(target: &Target<'_>, routes: &[Route]) -> (Option<(Route, Opened)>, Vec<Attempt>) {
    let mut attempts = Vec::new();
    for &route in routes {
        tracing::info!(%route, "trying route");
        match open_route(target, route).await {
            Ok(opened) => {
                attempts.push(Attempt { route, failure: None });
                return (Some((route, opened)), attempts);
            }
            Err(why) => {
                tracing::info!(%route, %why, "route did not open; trying the next");
                attempts.push(Attempt { route, failure: Some(why) });
            }
        }
    }
    (None, attempts)
}

/// Opens one route: `Ok` once its SSH server has sent its identification.
pub async fn open_route(t: &Target<'_>, route: Route) -> Result<Opened, String> {
    match route {
        Route::Direct => {
            let ip = t.address.ok_or("the instance has no such address")?;
            let stream = direct::connect(SocketAddr::new(IpAddr::V4(ip), t.port), DIRECT_DEADLINE)
                .await
                .map_err(|e| e.to_string())?;
            peek_hello(&stream).await?;
            Ok(Opened::Direct(stream))
        }
        Route::Eice => {
            let tunnel = tokio::time::timeout(RELAYED_DEADLINE, eice::open(t.aws, t.instance, t.port, &t.eice))
                .await
                .map_err(|_| format!("no tunnel within {} s", RELAYED_DEADLINE.as_secs()))?
                .map_err(|e| e.to_string())?;
            relayed(|rd, wr| async move { tunnel.pipe_with(rd, wr).await.map(drop).map_err(anyhow::Error::from) }).await
        }
        Route::Ssm => {
            let route = tokio::time::timeout(RELAYED_DEADLINE, ssm::open(t.aws, t.instance, t.port, t.ssm))
                .await
                .map_err(|_| format!("no session within {} s", RELAYED_DEADLINE.as_secs()))?
                .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
            relayed(|rd, wr| async move { route.pipe_with(rd, wr).await.map(drop).map_err(anyhow::Error::from) }).await
        }
        Route::Serial => Err("the serial console is not a byte stream to sshd".into()),
    }
}

/// Waits until the server's first line is in the socket (without consuming it).
async fn peek_hello(stream: &TcpStream) -> Result<(), String> {
    let wait = async {
        let mut buf = [0u8; 512];
        loop {
            let n = stream.peek(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the port closed without a word from sshd".to_string());
            }
            if buf[..n].contains(&b'\n') || n == buf.len() {
                return Ok(());
            }
            // Only part of the line yet: wait for more.
            stream.readable().await.map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(HELLO_DEADLINE, wait)
        .await
        .map_err(|_| format!("sshd said nothing within {} s", HELLO_DEADLINE.as_secs()))?
}

/// Runs a relayed route in a task behind an in-memory pipe and waits for the server's first line.
async fn relayed<F, Fut>(run: F) -> Result<Opened, String>
where
    F: FnOnce(tokio::io::ReadHalf<DuplexStream>, tokio::io::WriteHalf<DuplexStream>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (mut local, remote) = tokio::io::duplex(RELAY_BUFFER);
    let (rd, wr) = tokio::io::split(remote);
    let task = tokio::spawn(run(rd, wr));
    let mut hello = Vec::new();
    let read = async {
        let mut buf = [0u8; 512];
        while !hello.contains(&b'\n') {
            let n = local.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before sshd said anything".to_string());
            }
            hello.extend_from_slice(&buf[..n]);
            if !hello.contains(&b'\n') && hello.len() > MAX_HELLO {
                return Err(format!("not an SSH server: more than {MAX_HELLO} bytes without a line end"));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HELLO_DEADLINE, read).await {
        Ok(Ok(())) => Ok(Opened::Relayed { local: Replayed { first: hello, inner: local }, task }),
        Ok(Err(why)) => {
            drop(local);
            let detail = match tokio::time::timeout(Duration::from_millis(500), task).await {
                Ok(Ok(Err(e))) => format!("{why}: {e:#}"),
                _ => why,
            };
            Err(detail)
        }
        Err(_) => {
            task.abort();
            Err(format!("sshd said nothing within {} s", HELLO_DEADLINE.as_secs()))
        }
    }
}

/// A stream whose reads give `first` before anything else (the bytes read while deciding).
pub struct Replayed<S> {
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
    use super::*;
    use tokio::io::AsyncWriteExt;

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
                wr.write_all(&chunk).await?;
            }
        };
        let started = tokio::time::Instant::now();
        let refused = relayed(endless).await.err().expect("an endless first line is not an SSH server");
        assert!(refused.contains("without a line end"), "{refused}");
        assert!(started.elapsed() < HELLO_DEADLINE, "refused by size, not by the clock");

        let ssh = |_rd, mut wr: tokio::io::WriteHalf<DuplexStream>| async move {
            wr.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await?;
            std::future::pending::<()>().await;
            Ok(())
        };
        assert!(matches!(relayed(ssh).await, Ok(Opened::Relayed { .. })));
    }
}
