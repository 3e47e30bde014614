//! The local keyboard as a byte stream with the escape sequences taken out: what the escape
//! filter lets through is read as usual, `~?` prints the list on stderr, and `~.` resolves the
//! [`Left`] future (the stream then never yields again), so the caller can leave at once.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use super::escape::{Action, EscapeChar, EscapeFilter};

/// Resolves when the user typed the leave escape.
pub(crate) type Left = oneshot::Receiver<()>;

/// Keyboard input through the escape filter.
pub(crate) struct Keyboard<R> {
    inner: R,
    filter: EscapeFilter,
    what: &'static str,
    pending: Vec<u8>,
    at: usize,
    leave: Option<oneshot::Sender<()>>,
}

impl<R> Keyboard<R> {
    /// Wraps `inner`; `what` names the session in the help ("the shell").
    pub(crate) fn new(inner: R, escape: EscapeChar, what: &'static str) -> (Keyboard<R>, Left) {
        let (tx, rx) = oneshot::channel();
        let keyboard = Keyboard {
            inner,
            filter: EscapeFilter::new(escape, false),
            what,
            pending: Vec::new(),
            at: 0,
            leave: Some(tx),
        };
        (keyboard, rx)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Keyboard<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.at < this.pending.len() {
                let n = (this.pending.len() - this.at).min(buf.remaining());
                buf.put_slice(&this.pending[this.at..this.at + n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if this.leave.is_none() {
                // Left: nothing more is read (the caller is about to drop us).
                return Poll::Pending;
            }
            let mut raw = [0u8; 4096];
            let mut chunk = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {}
            }
            this.pending.clear();
            this.at = 0;
            for action in this.filter.feed(chunk.filled()) {
                if this.leave.is_none() {
                    // What followed `~.` in the same read is not sent; what came before is.
                    break;
                }
                match action {
                    Action::Send(bytes) => this.pending.extend_from_slice(&bytes),
                    Action::Help => {
                        let mut err = std::io::stderr();
                        let _ = err.write_all(format!("\r\n{}", this.filter.help(this.what)).as_bytes());
                        let _ = err.flush();
                    }
                    // Not enabled for this filter; nothing to send.
                    Action::Break => {}
                    Action::Leave => {
                        if let Some(tx) = this.leave.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn escapes_are_taken_out_and_leave_resolves() {
        let (mut typing, keys) = tokio::io::duplex(64);
        let (mut keyboard, mut left) = Keyboard::new(keys, EscapeChar::DEFAULT, "the shell");
        typing.write_all(b"ls ~/x\r~~a\r").await.unwrap();
        let mut buf = [0u8; 64];
        let n = keyboard.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"ls ~/x\r~a\r");
        assert!(left.try_recv().is_err(), "not left yet");
        // The leave escape is seen while the keyboard is read (the session reads it all along);
        // what was typed before it in the same read still goes out.
        typing.write_all(b"x\r~.after").await.unwrap();
        let n = keyboard.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"x\r");
        (&mut left).await.expect("~. resolves Left");
        let more = tokio::time::timeout(std::time::Duration::from_millis(50), keyboard.read(&mut buf)).await;
        assert!(more.is_err(), "nothing is read after ~.");
    }

    #[tokio::test]
    async fn end_of_input_passes_through() {
        let (typing, keys) = tokio::io::duplex(64);
        let (mut keyboard, _left) = Keyboard::new(keys, EscapeChar::NONE, "the shell");
        drop(typing);
        let mut buf = [0u8; 8];
        assert_eq!(keyboard.read(&mut buf).await.unwrap(), 0);
    }
}
