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
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};

/// How long the instance side may keep sending after ssh closed our stdin (within the 1 s exit promise).
pub const DRAIN_AFTER_STDIN_EOF: Duration = Duration::from_millis(800);

/// Copy buffer size: 64 KiB matches ssh's own channel packet size order and keeps syscalls few.
const BUF_SIZE: usize = 64 * 1024;

/// How a pipe session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The instance side closed the connection.
    RemoteClosed,
    /// ssh closed our stdin (and the instance side did not close within the drain time).
    LocalClosed,
    /// ssh closed our stdout.
    StdoutClosed,
    /// A signal asked us to stop (ssh sends SIGHUP when it exits).
    Signal,
}

/// What went through the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeStats {
    /// Bytes from ssh to the instance.
    pub up: u64,
    /// Bytes from the instance to ssh.
    pub down: u64,
    /// How it ended.
    pub end: End,
}

/// Pipes the process's stdin/stdout to `stream` until one side is done.
pub async fn pipe<S>(stream: S) -> io::Result<PipeStats>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    pipe_with(stream, tokio::io::stdin(), tokio::io::stdout()).await
}

/// [`pipe`] with the local halves as parameters (a test seam).
pub async fn pipe_with<S, R, W>(stream: S, local_in: R, local_out: W) -> io::Result<PipeStats>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (mut remote_rd, remote_wr) = tokio::io::split(stream);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;

    let mut up = tokio::spawn(copy_up(local_in, remote_wr));
    let down = copy_down(&mut remote_rd, local_out);
    tokio::pin!(down);

    tokio::select! {
        res = &mut down => {
            let (bytes, end) = res?;
            up.abort();
            Ok(PipeStats { up: 0, down: bytes, end })
        }
        res = &mut up => {
            let up_bytes = res.map_err(io::Error::other)??;
            tracing::debug!(bytes = up_bytes, "stdin closed; half-closed the stream");
            // Give the instance side a short time to finish what it is sending.
            match tokio::time::timeout(DRAIN_AFTER_STDIN_EOF, &mut down).await {
                Ok(res) => {
                    let (down_bytes, end) = res?;
                    Ok(PipeStats { up: up_bytes, down: down_bytes, end })
                }
                Err(_) => Ok(PipeStats { up: up_bytes, down: 0, end: End::LocalClosed }),
            }
        }
        _ = hup.recv() => Ok(signalled(&up)),
        _ = term.recv() => Ok(signalled(&up)),
        _ = int.recv() => Ok(signalled(&up)),
    }
}

fn signalled(up: &tokio::task::JoinHandle<io::Result<u64>>) -> PipeStats {
    up.abort();
    PipeStats {
        up: 0,
        down: 0,
        end: End::Signal,
    }
}

async fn copy_up<R, W>(mut from: R, mut to: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Half-close: the instance sees EOF, and can still answer.
            let _ = to.shutdown().await;
            return Ok(total);
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

async fn copy_down<R, W>(from: &mut R, mut to: W) -> io::Result<(u64, End)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.flush().await;
            return Ok((total, End::RemoteClosed));
        }
        let written = async {
            to.write_all(&buf[..n]).await?;
            to.flush().await
        };
        match written.await {
            Ok(()) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                return Ok((total, End::StdoutClosed));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
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
        let mut got_up = vec![0u8; up.len()];
        instance.read_exact(&mut got_up).await.unwrap();
        instance.write_all(&down).await.unwrap();
        instance.shutdown().await.unwrap();
        drop(instance);
        let mut got_down = Vec::new();
        ssh_out.read_to_end(&mut got_down).await.unwrap();
        let stats = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let _keep = writer.await.unwrap();
        assert_eq!(got_up, up);
        assert_eq!(got_down, down);
        assert_eq!(stats.end, End::RemoteClosed);
        assert_eq!(stats.down, down.len() as u64);
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
        assert_eq!(stats.end, End::RemoteClosed);
    }

    #[tokio::test(start_paused = true)]
    async fn stdin_eof_does_not_wait_forever() {
        let (stream, _instance) = tokio::io::duplex(64);
        let (ssh_in, local_in) = tokio::io::duplex(64);
        let (local_out, _ssh_out) = tokio::io::duplex(64);
        drop(ssh_in);
        let stats = pipe_with(stream, local_in, local_out).await.unwrap();
        assert_eq!(stats.end, End::LocalClosed);
    }
}
