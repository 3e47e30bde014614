//! Piping ssh's stdin/stdout to a route's byte stream, with half-close and prompt exit.
//!
//! Ends when (first of):
//! - the instance side closes (EOF): stdout is flushed and we are done;
//! - stdin reaches EOF: the write half of the stream is shut down (half-close), and the instance
//!   gets [`DRAIN_AFTER_STDIN_EOF`] to finish before we leave;
//! - stdout is gone (EPIPE), or SIGHUP/SIGTERM/SIGINT arrives (ssh sends SIGHUP when it exits).
//!
//! Nothing but the stream's bytes is ever written to stdout.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How long the instance side may keep sending after ssh closed our stdin ([`super::DRAIN`]).
pub(crate) use super::DRAIN as DRAIN_AFTER_STDIN_EOF;

/// Copy buffer size for the generic path (the direct route on Linux uses `splice` instead).
const BUF_SIZE: usize = 64 * 1024;

/// How a pipe session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The instance side closed the connection.
    RemoteClosed,
    /// ssh closed our stdin first (the instance side then got the drain time to finish).
    LocalClosed,
    /// ssh closed our stdout.
    StdoutClosed,
    /// A signal asked us to stop (ssh sends SIGHUP when it exits).
    Signal,
}

/// What went through the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PipeStats {
    /// Bytes from ssh to the instance.
    pub up: u64,
    /// Bytes from the instance to ssh.
    pub down: u64,
    /// Whether the last bytes that moved came from the instance (ssh sent nothing after them).
    pub instance_spoke_last: bool,
    /// How it ended.
    pub end: End,
}

/// Pipes the process's stdin/stdout to `stream` until one side is done.
///
/// ssh gives a ProxyCommand pipes; those are driven through epoll directly. Anything else (a
/// terminal, a file) goes through tokio's blocking stdin/stdout.
pub(crate) async fn pipe<S>(stream: S) -> io::Result<PipeStats>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (stdin, stdout) = local_halves();
    pipe_with(stream, stdin, stdout).await
}

/// ssh's stdin and stdout as async halves: pipes driven through epoll when they are pipes, a
/// regular file written directly, tokio's blocking stdin/stdout otherwise (a terminal).
pub(crate) fn local_halves() -> (Box<dyn AsyncRead + Unpin + Send>, Box<dyn AsyncWrite + Unpin + Send>) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;

    let stdin: Box<dyn AsyncRead + Unpin + Send> =
        match io::stdin().as_fd().try_clone_to_owned().and_then(pipe::Receiver::from_owned_fd) {
            Ok(rx) => Box::new(rx),
            Err(_) => Box::new(tokio::io::stdin()),
        };
    let stdout: Box<dyn AsyncWrite + Unpin + Send> = match io::stdout().as_fd().try_clone_to_owned() {
        Err(_) => Box::new(tokio::io::stdout()),
        Ok(fd) => {
            let file = std::fs::File::from(fd);
            if file.metadata().is_ok_and(|m| m.is_file()) {
                Box::new(FileOut(file))
            } else {
                match pipe::Sender::from_owned_fd(std::os::fd::OwnedFd::from(file)) {
                    Ok(tx) => Box::new(tx),
                    Err(_) => Box::new(tokio::io::stdout()),
                }
            }
        }
    };
    (stdin, stdout)
}

/// stdout redirected to a regular file: written directly, one `write(2)` per chunk. A write to a
/// file lands in the page cache and does not block for long, while tokio's stdout hands every
/// write to its blocking pool: `shell HOST -- cat FILE > out` of 64 MiB spent 3.2 s of system
/// time in those hand-offs (660 000 futex calls), five times the broker's work otherwise.
struct FileOut(std::fs::File);

impl AsyncWrite for FileOut {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(io::Write::write(&mut self.get_mut().0, buf))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// [`pipe`] with the local halves as parameters (a test seam).
pub(crate) async fn pipe_with<S, R, W>(stream: S, local_in: R, local_out: W) -> io::Result<PipeStats>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (mut remote_rd, remote_wr) = tokio::io::split(stream);
    let (up_count, down_count) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
    let stats = |end| {
        let (up, down) = (up_count.load(), down_count.load());
        PipeStats { up: up.0, down: down.0, instance_spoke_last: down.1 > up.1, end }
    };
    let mut stop = StopSignals::new()?;

    let mut up = tokio::spawn(copy_up(local_in, remote_wr, up_count.clone()));
    let down = copy_down(&mut remote_rd, local_out, &down_count);
    tokio::pin!(down);

    let end = tokio::select! {
        res = &mut down => res?,
        res = &mut up => {
            res.map_err(io::Error::other)??;
            tracing::debug!("stdin closed; half-closed the stream");
            // Give the instance side a short time to finish what it is sending.
            // ssh closed first, whatever the instance does next.
            let _ = tokio::time::timeout(DRAIN_AFTER_STDIN_EOF, &mut down).await;
            End::LocalClosed
        }
        () = stop.recv() => End::Signal,
    };
    up.abort();
    Ok(stats(end))
}

/// SIGHUP (ssh sends it when it exits), SIGTERM and SIGINT: each ends a session cleanly.
pub(crate) struct StopSignals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(StopSignals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves when any of them arrives.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.hup.recv() => {}
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Bytes moved in one direction, and a global sequence number of the last move (which side spoke last).
#[derive(Default)]
pub(crate) struct Counter {
    bytes: AtomicU64,
    last: AtomicU64,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

impl Counter {
    pub(crate) fn add(&self, n: usize) {
        self.add_at(n, Counter::next());
    }

    /// A sequence number taken now, for a move counted later with [`Counter::add_at`].
    pub(crate) fn next() -> u64 {
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts `n` bytes moved at the moment `seq` was taken.
    pub(crate) fn add_at(&self, n: usize, seq: u64) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.last.fetch_max(seq, Ordering::Relaxed);
    }

    pub(crate) fn load(&self) -> (u64, u64) {
        (self.bytes.load(Ordering::Relaxed), self.last.load(Ordering::Relaxed))
    }
}

async fn copy_up<R, W>(mut from: R, mut to: W, count: Arc<Counter>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the instance sees EOF, and can still answer.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        count.add(n);
    }
}

async fn copy_down<R, W>(from: &mut R, mut to: W, count: &Counter) -> io::Result<End>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.flush().await;
            return Ok(End::RemoteClosed);
        }
        let written = async {
            to.write_all(&buf[..n]).await?;
            to.flush().await
        };
        match written.await {
            Ok(()) => count.add(n),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(End::StdoutClosed),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn bytes_pass_both_ways_through_tiny_buffers() {
        let (stream, mut instance) = tokio::io::duplex(8);
        let (ssh_in, local_in) = tokio::io::duplex(8);
        let (local_out, mut ssh_out) = tokio::io::duplex(8);
        let task = tokio::spawn(pipe_with(stream, local_in, local_out));

        let up: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..7_000u32).map(|i| (i % 13) as u8).collect();
        let writer = {
            let up = up.clone();
            tokio::spawn(async move {
                let mut ssh_in = ssh_in;
                ssh_in.write_all(&up).await.unwrap();
                // Keep stdin open: the instance closes first.
                ssh_in
            })
        };
        let reader = tokio::spawn(async move {
            let mut got_down = Vec::new();
            ssh_out.read_to_end(&mut got_down).await.unwrap();
            got_down
        });
        let mut got_up = vec![0u8; up.len()];
        instance.read_exact(&mut got_up).await.unwrap();
        instance.write_all(&down).await.unwrap();
        instance.shutdown().await.unwrap();
        drop(instance);
        let got_down = reader.await.unwrap();
        let stats = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap().unwrap();
        let _keep = writer.await.unwrap();
        assert_eq!(got_up, up);
        assert_eq!(got_down, down);
        assert_eq!(stats.end, End::RemoteClosed);
        assert_eq!(stats.down, down.len() as u64);
        assert!(stats.instance_spoke_last);
    }

    #[tokio::test]
    async fn stdin_eof_half_closes_then_drains() {
        let (stream, mut instance) = tokio::io::duplex(64);
        let (ssh_in, local_in) = tokio::io::duplex(64);
        let (local_out, mut ssh_out) = tokio::io::duplex(64);
        let task = tokio::spawn(pipe_with(stream, local_in, local_out));
        drop(ssh_in);
        // The instance sees EOF (half-close), then answers and closes.
        let mut sink = Vec::new();
        instance.read_to_end(&mut sink).await.unwrap();
        instance.write_all(b"bye").await.unwrap();
        drop(instance);
        let mut got = Vec::new();
        ssh_out.read_to_end(&mut got).await.unwrap();
        let stats = task.await.unwrap().unwrap();
        assert_eq!(got, b"bye");
        assert_eq!(stats.end, End::LocalClosed);
        assert_eq!(stats.down, 3);
    }

    #[tokio::test]
    async fn stdin_eof_does_not_wait_forever() {
        let (stream, _instance) = tokio::io::duplex(64);
        let (ssh_in, local_in) = tokio::io::duplex(64);
        let (local_out, _ssh_out) = tokio::io::duplex(64);
        drop(ssh_in);
        let piped = tokio::time::timeout(Duration::from_secs(5), pipe_with(stream, local_in, local_out));
        let stats = piped.await.expect("the pipe ends when stdin does").unwrap();
        assert_eq!(stats.end, End::LocalClosed);
    }
}
